"""Build the FastAPI application: ``uvicorn --factory gateway.main:create_app``."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request, Response

from .admission import AdmissionController
from .api.routes import dicomweb, health, models, predict
from .audit import AuditLog, AuditRecord
from .catalog import ModelCatalog
from .config import Settings, get_settings
from .errors import GatewayError, install_error_handlers
from .logs import configure_logging, request_id_var
from .metrics import ERRORS, REQUEST_LATENCY
from .security import authenticate
from .triton import TritonClient

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
log = logging.getLogger("medserve.gateway")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s, settings.triton_probe_timeout_s)
        app.state.triton = triton
        app.state.catalog = ModelCatalog(triton, settings.model_cache_ttl_s, settings.drift_window_size, settings.drift_min_samples)
        try:
            yield
        finally:
            await triton.close()

    app = FastAPI(
        title="medserve",
        version="0.1.0",
        summary="DICOM in, predictions out: medical-image inference over NVIDIA Triton.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.admission = AdmissionController(settings.max_in_flight)
    app.state.audit = AuditLog(settings.audit_log_path) if settings.audit_log_path else None
    install_error_handlers(app)
    for router in (health.router, models.router, predict.router, dicomweb.router):
        app.include_router(router)

    @app.middleware("http")
    async def request_context(request: Request, call_next) -> Response:
        """Request id, authentication, access log, latency metrics and the audit record."""
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.state.request_id = request_id
        request.state.error_code = None
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        record = AuditRecord(request_id=request_id, key_id="unauthenticated", route=request.url.path)
        request.state.audit = record
        try:
            try:
                request.state.key_id = record.key_id = authenticate(request, settings.api_keys)
            except GatewayError as exc:
                request.state.key_id = "unauthenticated"
                response = await _error_response(app, request, exc)
            else:
                response = await call_next(request)
            latency = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            # Only names that routed to a known model become label values: bounded cardinality.
            model = request.scope.get("path_params", {}).get("name", "") if response.status_code != 404 else ""
            REQUEST_LATENCY.labels(model, route, f"{response.status_code // 100}xx").observe(latency)
            if request.state.error_code:
                ERRORS.labels(request.state.error_code).inc()
            response.headers["X-Request-ID"] = request_id
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": route,
                    "model": model,
                    "status": response.status_code,
                    "code": request.state.error_code,
                    "key_id": request.state.key_id,
                    "latency_ms": round(latency * 1000, 2),
                },
            )
            if app.state.audit is not None and (request.url.path.endswith("/predict") or request.url.path.startswith("/dicomweb/")):
                record.model = record.model or request.url.path.removeprefix("/v1/models/").partition("/")[0]
                record.outcome = request.state.error_code or "ok"
                record.status_code = response.status_code
                record.latency_ms = round(latency * 1000, 2)
                app.state.audit.write(record)
            return response
        finally:
            request_id_var.reset(token)

    return app


async def _error_response(app: FastAPI, request: Request, exc: GatewayError) -> Response:
    handler = app.exception_handlers[GatewayError]
    return await handler(request, exc)
