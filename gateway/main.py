"""Build the FastAPI application: ``uvicorn --factory gateway.main:create_app``."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request, Response

from .api.routes import health, models, predict
from .catalog import ModelCatalog
from .config import Settings, get_settings
from .errors import install_error_handlers
from .metrics import ERRORS, REQUEST_LATENCY
from .triton import TritonClient

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        triton = TritonClient(settings.triton_grpc_url, settings.triton_timeout_s, settings.triton_probe_timeout_s)
        app.state.triton = triton
        app.state.catalog = ModelCatalog(triton, settings.model_cache_ttl_s)
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
    install_error_handlers(app)
    for router in (health.router, models.router, predict.router):
        app.include_router(router)

    @app.middleware("http")
    async def request_context(request: Request, call_next) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request.state.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.state.error_code = None
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        # Only names that routed to a known model become label values: bounded cardinality.
        model = request.scope.get("path_params", {}).get("name", "") if response.status_code != 404 else ""
        REQUEST_LATENCY.labels(model, path, f"{response.status_code // 100}xx").observe(time.perf_counter() - started)
        if request.state.error_code:
            ERRORS.labels(request.state.error_code).inc()
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    return app
