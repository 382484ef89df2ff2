"""Gateway settings: one class, read from ``MEDSERVE_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the gateway. Documented in the README's *Configuration* section."""

    model_config = SettingsConfigDict(env_prefix="MEDSERVE_", env_file=None, extra="ignore")

    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8080, ge=1, le=65535, description="HTTP port of the gateway.")
    workers: int = Field(
        1, ge=1, le=64, description="Gateway processes on the port (python -m gateway.server); one serves at most one CPU's worth of requests."
    )
    triton_grpc_url: str = Field("127.0.0.1:8001", description="host:port of Triton's gRPC endpoint.")
    triton_timeout_s: float = Field(30.0, gt=0, description="Deadline for one inference call to Triton (504 when exceeded).")
    triton_probe_timeout_s: float = Field(2.0, gt=0, description="Deadline for readiness and metadata calls to Triton.")
    model_cache_ttl_s: float = Field(5.0, ge=0, description="How long a model's config is cached before Triton is asked again.")
    max_upload_bytes: int = Field(512 * 1024 * 1024, gt=0, description="Largest request body accepted (413 beyond it).")
    retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with 503 answers.")
    log_level: str = Field("info", description="Python log level name.")
    max_in_flight: int = Field(64, ge=1, description="Predictions processed at once; beyond it the answer is 429 with Retry-After.")
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "JSON object {key_id: key}. When non-empty every route except /healthz, /readyz and /metrics "
            "needs 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (401 without, 403 with a wrong key)."
        ),
    )
    audit_log_path: str | None = Field(None, description="Append-only JSONL audit log file; unset disables auditing.")
    sliding_window_batch_size: int = Field(4, ge=1, description="Patches per Triton request in sliding-window inference.")
    sliding_window_concurrency: int = Field(4, ge=1, description="Patch batches in flight to Triton at once per request.")
    sliding_window_overlap: float = Field(0.25, ge=0.0, lt=1.0, description="Fraction of a patch shared with its neighbour.")
    drift_window_size: int = Field(200, ge=10, description="Recent images per model compared with the export reference.")
    drift_min_samples: int = Field(20, ge=1, description="Images in the window before drift scores are published.")
    max_series_instances: int = Field(2000, ge=1, description="Most DICOM instances accepted in one request.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
