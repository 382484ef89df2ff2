"""Gateway errors, and the one place every error becomes an HTTP answer.

    GatewayError                 status  code
    ├── InvalidUpload              400   invalid_upload           malformed multipart / ZIP, or no DICOM parts
    ├── Unauthorized               401   unauthorized             no API key
    ├── Forbidden                  403   forbidden                an unknown API key
    ├── ModelNotFound              404   model_not_found
    ├── ReportUnavailable          404   report_unavailable       the model was exported without its report in the card
    ├── JobNotFound                404   job_not_found            no job with that id (or it was removed by retention)
    ├── JobNotFinished             409   job_not_finished         the job's result asked for while it is queued or running
    ├── JobFailed               (its code's) <the job's code>  the result of a failed job: the error it failed with
    ├── NotAcceptable              406   not_acceptable           no output format the client accepts
    ├── UnsupportedMediaType       415   unsupported_media_type
    ├── EmptyBody                  400   empty_body
    ├── PayloadTooLarge            413   payload_too_large
    ├── InputMismatch              422   input_mismatch           series do not match the model's inputs
    ├── OutputUnavailable          422   output_unavailable       format does not fit the task (e.g. a mask of a classifier)
    ├── InputOutOfRange            422   input_out_of_range       outside the model's input quality gate (e.g. a blank image)
    ├── RegionNotFound             422   region_not_found         a cascade's localiser found nothing to run the next stage on
    ├── Overloaded                 429   overloaded               in-flight cap reached (Retry-After)
    ├── TritonUnavailable          503   triton_unavailable       (Retry-After)
    ├── ModelNotReady              503   model_not_ready          (Retry-After)
    ├── InferenceTimeout           504   inference_timeout
    ├── InferenceFailed            502   inference_failed
    ├── ModelMisconfigured         500   model_misconfigured      the model config lacks medserve parameters
    └── TaskUnsupported            501   task_unsupported         a model task this gateway version cannot serve

Preprocessing errors (``preprocessing.errors``, and ``decoder_busy`` of the decoder pool) keep
their own ``code`` and are mapped by :data:`PREPROCESSING_STATUS`. Every error body is :class:`gateway.schemas.ErrorBody`.
Routes raise these; they never build ``HTTPException``s.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from preprocessing import PreprocessingError

log = logging.getLogger("medserve.gateway")


class GatewayError(Exception):
    status_code: int = 500
    code: str = "internal_error"
    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidUpload(GatewayError):
    status_code, code = 400, "invalid_upload"


class Unauthorized(GatewayError):
    status_code, code = 401, "unauthorized"


class Forbidden(GatewayError):
    status_code, code = 403, "forbidden"


class ModelNotFound(GatewayError):
    status_code, code = 404, "model_not_found"


class ReportUnavailable(GatewayError):
    """The model's card carries no export report (exported before contract 1.3, or not by
    ``medserve export``'s pipeline)."""

    status_code, code = 404, "report_unavailable"


class JobNotFound(GatewayError):
    status_code, code = 404, "job_not_found"


class JobNotFinished(GatewayError):
    status_code, code = 409, "job_not_finished"


class DeliveryNotFound(GatewayError):
    status_code, code = 404, "delivery_not_found"


class DeliveryNotRetryable(GatewayError):
    """Only a dead-lettered delivery (``failed_export``) is retried through the API."""

    status_code, code = 409, "delivery_not_retryable"


class JobFailed(GatewayError):
    """A failed job's result: answered with the code the job failed with, and that code's
    status (:func:`status_of_code`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.status_code = code, status_of_code(code)


class NotAcceptable(GatewayError):
    status_code, code = 406, "not_acceptable"


class InputMismatch(GatewayError):
    status_code, code = 422, "input_mismatch"


class OutputUnavailable(GatewayError):
    status_code, code = 422, "output_unavailable"


class RegionNotFound(GatewayError):
    status_code, code = 422, "region_not_found"


class InputOutOfRange(GatewayError):
    """An input outside the ranges its model's export saw (``gateway.quality``), when the
    model's gate rejects rather than warns."""

    status_code, code = 422, "input_out_of_range"


class Overloaded(GatewayError):
    status_code, code, retry_after_s = 429, "overloaded", 1


class UnsupportedMediaType(GatewayError):
    status_code, code = 415, "unsupported_media_type"


class EmptyBody(GatewayError):
    status_code, code = 400, "empty_body"


class PayloadTooLarge(GatewayError):
    status_code, code = 413, "payload_too_large"


class TritonUnavailable(GatewayError):
    status_code, code, retry_after_s = 503, "triton_unavailable", 5


class ModelNotReady(GatewayError):
    status_code, code, retry_after_s = 503, "model_not_ready", 5


class InferenceTimeout(GatewayError):
    status_code, code = 504, "inference_timeout"


class InferenceFailed(GatewayError):
    status_code, code = 502, "inference_failed"


class ModelMisconfigured(GatewayError):
    status_code, code = 500, "model_misconfigured"


class TaskUnsupported(GatewayError):
    status_code, code = 501, "task_unsupported"


#: HTTP status for each preprocessing error code: the request was understood, but its DICOM
#: cannot be used (400), is in a syntax we cannot decode (415), or does not fit the model (422).
PREPROCESSING_STATUS: dict[str, int] = {
    "invalid_dicom": 400,
    "missing_pixel_data": 422,
    "unsupported_transfer_syntax": 415,
    "inconsistent_series": 422,
    "modality_mismatch": 422,
    "input_too_large": 422,
    "decoder_busy": 503,
    "invalid_spec": 500,
}


def status_of_code(code: str) -> int:
    """The HTTP status of an error code of this module or of preprocessing; 500 for any other
    (``internal_error``, a job's ``lease_expired``)."""
    for cls in _subclasses(GatewayError):
        if cls.__dict__.get("code") == code:
            return cls.status_code
    return PREPROCESSING_STATUS.get(code, 500)


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def _body(request: Request, code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message, "request_id": getattr(request.state, "request_id", "")}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> JSONResponse:
        retry_after = exc.retry_after_s
        settings = getattr(request.app.state, "settings", None)
        if exc.status_code == 503 and settings is not None:
            retry_after = settings.retry_after_s
        headers = {"Retry-After": str(retry_after)} if retry_after else {}
        if isinstance(exc, Unauthorized):
            headers["WWW-Authenticate"] = 'Bearer realm="medserve"'
        request.state.error_code = exc.code
        return JSONResponse(_body(request, exc.code, exc.message), status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(PreprocessingError)
    async def _preprocessing_error(request: Request, exc: PreprocessingError) -> JSONResponse:
        request.state.error_code = exc.code
        status = PREPROCESSING_STATUS.get(exc.code, 400)
        settings = getattr(request.app.state, "settings", None)
        headers = {"Retry-After": str(settings.retry_after_s if settings else 5)} if status == 503 else None
        return JSONResponse(_body(request, exc.code, exc.message), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        request.state.error_code = "invalid_request"
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return JSONResponse(_body(request, "invalid_request", problems), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        request.state.error_code = code
        return JSONResponse(_body(request, code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error_response(request, exc)


def internal_error_response(request: Request, exc: BaseException) -> JSONResponse:
    """The answer to whatever escaped a handler: logged (type and place, never its message,
    which may quote a DICOM value), marked ``internal_error`` for the metrics and the audit
    trail, and answered JSON with the request id."""
    if not getattr(exc, "_medserve_logged", False):  # the middleware re-raises what it saw mid-answer
        log_unexpected(exc, getattr(request.state, "request_id", ""))
        try:
            exc._medserve_logged = True  # type: ignore[attr-defined]
        except AttributeError:
            pass
    request.state.error_code = "internal_error"
    return JSONResponse(_body(request, "internal_error", "internal server error"), status_code=500)


def log_unexpected(exc: BaseException, request_id: str) -> None:
    """One error line for an unexpected exception: its type and the innermost frame it was
    raised in. Not its message nor a traceback with locals: library messages (pydicom's
    among them) quote element values, which may identify a patient."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f"{frame.tb_frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.tb_lineno} in {frame.tb_frame.f_code.co_name}" if frame else ""
    log.error("unhandled error", extra={"request_id": request_id, "error_type": type(exc).__name__, "raised_at": where})
