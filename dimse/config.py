"""Receiver settings: one class, read from ``MEDSERVE_*`` environment variables (the DIMSE ones
``MEDSERVE_DIMSE_*``; the work directory and database shared with the job engine)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DimseSettings(BaseSettings):
    """Every knob of the DIMSE receiver. Documented in the README's *Configuration* section."""

    model_config = SettingsConfigDict(env_prefix="MEDSERVE_", env_file=None, extra="ignore")

    dimse_ae_title: str = Field("MEDSERVE", min_length=1, max_length=16, description="AE title the receiver answers as.")
    dimse_port: int = Field(11112, ge=0, le=65535, description="TCP port of the DIMSE receiver (0: a free port the kernel chooses).")
    dimse_host: str = Field("0.0.0.0", description="Address the DIMSE receiver binds to.")
    work_dir: Path = Field(Path("work"), description="Work directory of the node: the spool (work_dir/spool) and the SQLite job store.")
    database_url: str | None = Field(None, description="Job store URL (postgresql://...); unset: SQLite medserve.db under work_dir.")
    dimse_allowed_calling_aes: list[str] = Field(
        default_factory=list, description="JSON list of calling AE titles accepted; empty accepts every caller (others: A-ASSOCIATE-RJ permanent)."
    )
    dimse_max_associations: int = Field(16, ge=1, description="Associations served at once; beyond it A-ASSOCIATE-RJ transient.")
    dimse_disk_watermark: float = Field(
        0.90, gt=0, le=1, description="Used fraction of the spool's filesystem beyond which associations are refused (transient, temporary congestion)."
    )
    dimse_series_silence_s: float = Field(10.0, gt=0, description="A series is complete this many seconds after its last instance.")
    dimse_series_max_age_s: float = Field(3600.0, gt=0, description="A series is complete this many seconds after its first instance, even if instances keep coming.")
    dimse_assembly_poll_s: float = Field(1.0, gt=0, description="How often the receiver looks for complete series in the store.")
    dimse_incoming_stale_s: float = Field(
        3600.0, gt=0, description="A partial incoming file untouched this long (its association died) is removed."
    )
    dimse_network_timeout_s: float = Field(60.0, gt=0, description="Seconds without a PDU from the peer before the association is aborted.")
    dimse_max_pdu_bytes: int = Field(262144, ge=0, description="Largest P-DATA PDU the receiver accepts (0: unlimited).")
    log_level: str = Field("info", description="Python log level name.")

    @field_validator("dimse_allowed_calling_aes")
    @classmethod
    def _strip(cls, titles: list[str]) -> list[str]:
        return [title.strip() for title in titles if title.strip()]

    @property
    def spool_dir(self) -> Path:
        return self.work_dir / "spool"
