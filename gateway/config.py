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
    shared_memory_max_mb: int = Field(
        256, ge=0,
        description="Most MiB of system shared memory one gateway process keeps registered with a Triton on its host for "
        "inputs and outputs (a deepbet 256^3 call holds 216 MiB); beyond it, tensors go over gRPC. 0: always gRPC.",
    )
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
    # Bounds on everything a client controls (preprocessing.limits, gateway.uploads, gateway.http_limits).
    max_expanded_bytes: int | None = Field(
        None, gt=0, description="Bytes all ZIP members of one request may inflate to, counted as inflated (413 beyond); unset: max_upload_bytes."
    )
    max_upload_parts: int = Field(2048, ge=1, description="Parts of one multipart body, empty parts and plain form fields included, counted while it streams (400 beyond).")
    max_archive_members: int = Field(10_000, ge=1, description="Files in all ZIP archives of one request (400 beyond).")
    max_request_header_bytes: int = Field(65536, ge=1024, description="Bytes of a request's target and headers; 431 beyond, refused before they are buffered.")
    max_request_headers: int = Field(100, ge=10, description="Header lines of a request; 431 beyond.")
    max_frames: int = Field(4096, ge=1, description="(0028,0008) Number of Frames of one instance (422 input_too_large beyond).")
    max_pixels_per_frame: int = Field(8192 * 8192, ge=1, description="Rows x Columns x Samples per Pixel of one frame, and of a frame resampled to the model's spacing (422 beyond).")
    max_voxels_per_request: int = Field(1 << 30, ge=1, description="Pixels of one series (all frames), and of the volume resampled from it (422 beyond).")
    max_sequence_depth: int = Field(32, ge=1, description="Nesting depth of sequences in a DICOM header (400 invalid_dicom beyond).")
    max_header_elements: int = Field(1_000_000, ge=1, description="Data elements in one DICOM header, nested ones included (422 beyond).")
    # The pool of decoder processes that runs every native codec (preprocessing.decoder_pool).
    decoder_workers: int = Field(2, ge=1, description="Decoder processes of one gateway process; compressed pixel data is decoded only there.")
    decoder_memory_limit_bytes: int = Field(1 << 30, ge=64 << 20, description="Address space of one decoder process (RLIMIT_AS); a decode beyond it fails that request with 400.")
    decoder_deadline_s: float = Field(10.0, gt=0, description="Longest one decode call may take before its process is killed (400 for that request).")
    decoder_tasks_per_worker: int = Field(200, ge=1, description="Decode calls one decoder process serves before it is replaced.")
    decoder_wait_s: float = Field(30.0, gt=0, description="Longest a request waits for an idle decoder process (503 decoder_busy beyond).")
    # The node's jobs (package jobs): the async REST API, STOW-RS and DIMSE-received series.
    work_dir: str = Field("./work", description="Folder of the node's durable state: job inputs and results (jobs/<id>/), and the SQLite job store when no database URL is set.")
    database_url: str | None = Field(None, description="Job store database (postgresql://user@host/db shares the work between replicas); unset: SQLite (WAL) in work_dir.")
    job_workers: int = Field(1, ge=0, le=64, description="Job worker threads of one gateway process (0: this process only accepts jobs; other replicas run them).")
    job_lease_s: float = Field(60.0, gt=0, description="Seconds a worker holds a job without renewing (renewed every third of it); a dead worker's job is retried by another after it.")
    job_max_attempts: int = Field(3, ge=1, description="Runs of a job before it is failed (a 4xx error fails it at once).")
    job_retention_h: float = Field(168.0, gt=0, description="Hours a finished job, its input and its result are kept before cleanup.")
    job_webhook_timeout_s: float = Field(5.0, gt=0, description="Deadline of a job's completion webhook call (a failure is logged and counted, never fails the job).")
    routes: str | None = Field(None, description="Routing rules (YAML) for series the DICOM receiver completes; unset: each series to the models whose contract takes it.")
    routing_poll_s: float = Field(1.0, gt=0, description="How often complete series are routed into jobs.")
    delivery_workers: int = Field(1, ge=0, le=16, description="Threads sending finished jobs' DICOM outputs to the destinations of the routes file (0: this process sends nothing; another replica does).")
    delivery_poll_s: float = Field(1.0, gt=0, description="How often an idle sender looks for deliveries that are due.")
    worker_idle_poll_max_s: float = Field(
        5.0, gt=0,
        description="Longest wait of an idle job worker or sender between looks for work (the wait doubles from its poll interval while idle; "
        "work made in this process wakes them at once, work made by another replica waits at most this long).",
    )
    delivery_lease_s: float = Field(300.0, gt=0, description="Seconds a sender holds a delivery; one whose sender died is sent by another after it (longer than a send can take).")
    routing_study_silence_s: float = Field(10.0, gt=0, description="A study grouped by rule is routed this long after its last series completed.")


@lru_cache
def get_settings() -> Settings:
    return Settings()
