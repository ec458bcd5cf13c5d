"""The ASGI application: routes, app-wide resources, metrics."""
