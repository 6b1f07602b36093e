"""HTTP routes, one module per surface; each route is a thin translation to `gateway.operations`."""

from gateway.routes import compat, images, predictions, system

ROUTERS = (images.router, predictions.router, compat.router, system.router)

__all__ = ["ROUTERS"]
