"""Asynchronous predictions: `POST /v1/run`, then poll `GET /v1/predictions/{id}` (or cancel it)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from gateway import operations, predictions
from gateway.db import Prediction, as_utc
from gateway.deps import AccountDep, Services, ServicesDep
from gateway.idempotency import run_idempotent
from gateway.routes._common import ERRORS, JsonBombSafeRoute, base_url, json_response, output_urls, request_id
from gateway.schemas import PredictionError, PredictionResponse, RunRequest

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["predictions"], route_class=JsonBombSafeRoute)
_BY_ID = {"prediction_id": "$response.body#/id"}
LINKS = {
    "GetPrediction": {"operationId": "get_prediction", "parameters": _BY_ID, "description": "Poll the prediction."},
    "CancelPrediction": {"operationId": "cancel_prediction", "parameters": _BY_ID, "description": "Cancel it."},
}
"""OpenAPI links from every answer that carries a prediction to the operations on it (clients and schemathesis's
stateful phase follow them)."""


@router.post(
    "/run", status_code=201, response_model=PredictionResponse, operation_id="run", responses={201: {"links": LINKS}}
)
async def run(body: RunRequest, request: Request, services: ServicesDep, account_id: AccountDep) -> Response:
    """Start a prediction. Its credits are held now and charged only when it succeeds."""

    async def produce() -> Response:
        job = predictions.job_for(body, services)
        image = await operations.read_image(services, body.image, "image")
        prediction = await predictions.submit(services, account_id, job, image, request_id(request))
        return json_response(_view(request, services, prediction), status_code=201)

    return await run_idempotent(request, services, account_id, produce)


@router.get(
    "/predictions/{prediction_id}",
    response_model=PredictionResponse,
    operation_id="get_prediction",
    responses={200: {"links": LINKS}},
)
async def get_prediction(
    prediction_id: str, request: Request, services: ServicesDep, account_id: AccountDep
) -> Response:
    """A prediction of this account. The first poll that reports `succeeded` carries `x-credits-charged`."""
    prediction, is_first_success_report = await predictions.fetch_for_client(services, account_id, prediction_id)
    headers = {"x-credits-charged": str(prediction.credits)} if is_first_success_report else None
    return json_response(_view(request, services, prediction), headers=headers)


@router.post(
    "/predictions/{prediction_id}/cancel",
    response_model=PredictionResponse,
    operation_id="cancel_prediction",
    responses={200: {"links": LINKS}},
)
async def cancel_prediction(
    prediction_id: str, request: Request, services: ServicesDep, account_id: AccountDep
) -> Response:
    """Cancel a prediction that has not finished; nothing is charged for it."""
    prediction = await predictions.cancel(services, account_id, prediction_id)
    return json_response(_view(request, services, prediction))


def _view(request: Request, services: Services, prediction: Prediction) -> PredictionResponse:
    output = prediction.output
    if output is not None and not prediction.return_base64:
        output = output_urls(request, services, output)
    base = base_url(request, services)
    predict_time = predictions.predict_time_s(prediction)
    return PredictionResponse(
        id=prediction.id,
        model="background-change" if prediction.model == "replace_background" else "remove-background",
        status=prediction.status,  # type: ignore[arg-type]
        output=output,
        error=PredictionError(**prediction.error) if prediction.error else None,
        credits_charged=prediction.credits if prediction.status == "succeeded" else 0,
        created_at=as_utc(prediction.created_at),
        started_at=as_utc(prediction.started_at) if prediction.started_at else None,
        completed_at=as_utc(prediction.completed_at) if prediction.completed_at else None,
        metrics={"predict_time": predict_time} if predict_time is not None else {},
        urls={
            "get": f"{base}/v1/predictions/{prediction.id}",
            "cancel": f"{base}/v1/predictions/{prediction.id}/cancel",
        },
    )
