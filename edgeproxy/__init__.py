"""edgeproxy: a PoP-style caching reverse proxy that personalizes cached JSON per request."""

__version__ = "0.1.0"
