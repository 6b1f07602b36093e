"""Account balance, output files and the operational endpoints (health, readiness, metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.credits import get_balance, report_balance
from gateway.db import ping
from gateway.deps import AccountDep, Services, ServicesDep
from gateway.errors import NotFound
from gateway.schemas import CreditsResponse, ErrorBody
from gateway.storage import EXPIRED, LocalStorage
from replate.imageio import content_type

router = APIRouter()


@router.get("/v1/credits", response_model=CreditsResponse, tags=["account"], responses={401: {"model": ErrorBody}})
async def credits(services: ServicesDep, account_id: AccountDep) -> CreditsResponse:
    async with services.reader.connect() as connection:
        balance = await connection.run_sync(get_balance, account_id)
    report_balance(balance)
    return CreditsResponse(balance=balance.balance, held=balance.held, available=balance.available)


@router.get(
    "/v1/outputs/{name}",
    tags=["outputs"],
    response_class=FileResponse,
    responses={200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}, 404: {"model": ErrorBody}},
)
async def output_file(name: str, services: ServicesDep, expires: int = 0, sig: str = "") -> FileResponse:
    """An output image behind a signed, expiring URL: the URL is the credential, no API key is needed."""
    if not isinstance(services.storage, LocalStorage):
        raise NotFound(EXPIRED)  # other stores hand out their own URLs
    path = services.storage.open(name, expires, sig)
    return FileResponse(path, media_type=content_type(path.suffix.lstrip(".")))


@router.get("/healthz", tags=["system"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["system"], responses={503: {"model": ErrorBody}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """Triton and the database are reachable; `engines` lists the scene engines requests can reach (a
    `diffusion-*` engine only when a diffusion build is loaded)."""
    checks = {"triton": await services.triton.is_ready(), "database": await _database_ready(services)}
    if all(checks.values()):
        engines = {"scene": await services.triton.scene_engines()}
        return JSONResponse({"status": "ready", "checks": checks, "engines": engines})
    failing = ", ".join(name for name, ok in checks.items() if not ok)
    body = {"error": {"code": "unavailable", "message": f"not ready: {failing}"}, "checks": checks}
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", tags=["system"], response_class=Response)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics."""
    async with services.reader.connect() as connection:
        await services.metrics.refresh_from_database(connection)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _database_ready(services: Services) -> bool:
    try:
        await ping(services.engine)
    except Exception:  # any driver error means "not ready"; the probe must answer, not raise
        return False
    return True
