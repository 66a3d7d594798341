"""An in-process Kubernetes API server emulator (contract C1).

``APIServer`` serves the REST API over HTTPS for real clients (kubectl, helm, kubernetes-asyncio) and offers
``api.client``, an in-process client going through the very same request pipeline.
"""

from .errors import APIError
from .server import APIServer

__all__ = ["APIError", "APIServer"]
