"""The token service: slots (cache and single flight), accounts, retries, the refresher.

It talks to sources, replicas and observers only through the protocols in ``ports``.
"""
