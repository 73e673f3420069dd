"""The HTTP edge: the RSGI app and its hot answer, routes, parameters, the OpenAPI document, the server."""
