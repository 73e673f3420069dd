"""The token service: slots (cache and single flight), accounts, retries, the refresher; it reaches
sources, replicas and observers only through the protocols in ``ports``."""
