"""Where results go: the ``destinations`` of the routes file, and which outputs a route sends.

```yaml
destinations:
  pacs:                                  # a name routes refer to
    kind: dimse                          # C-STORE SCU
    ae_title: ORTHANC                    # the destination's AE title
    host: 10.0.0.5
    port: 104
    calling_ae: MEDSERVE                 # ours (default MEDSERVE)
  archive:
    kind: dicomweb                       # STOW-RS: POST {url}/studies
    url: https://pacs.example.org/dicom-web
    token_env: ARCHIVE_TOKEN             # bearer token read from this environment variable
    retry: {max_attempts: 12, backoff_s: 30, max_backoff_s: 900}
routes:
  - name: chest-ct
    match: {modality: [CT]}
    models: [ct_nodule_segmenter_3d]
    send:
      - {destination: pacs, outputs: [seg, sr]}
      - {destination: archive, outputs: [seg, sr, sc]}
```

A secret never sits in the routes file: a bearer token is named by the environment variable
that holds it, read when a delivery is attempted. Every destination retries by its ``retry``
policy: attempt *n* that fails waits ``min(backoff_s * 2**(n-1), max_backoff_s)`` before the
next, and after ``max_attempts`` the delivery is dead-lettered (``failed_export``).
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DESTINATION_OUTPUTS", "Destination", "DicomwebDestination", "DimseDestination", "RetryPolicy", "Send"]

#: The DICOM outputs a destination can receive (``format=`` names of the gateway's encoders).
DESTINATION_OUTPUTS: tuple[str, ...] = ("seg", "sr", "sc")

#: AE titles: 1-16 characters of the default repertoire, no backslash or control character (PS3.5 6.2).
_AE_TITLE = r"^[\x20-\x5b\x5d-\x7e]{1,16}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Strict):
    """How a destination's failed deliveries are retried (per delivery: every output of one job)."""

    max_attempts: int = Field(8, ge=1, le=100, description="Attempts before the delivery is dead-lettered (failed_export).")
    backoff_s: float = Field(10.0, gt=0, le=86_400, description="Wait after the first failed attempt; doubled after each further one.")
    max_backoff_s: float = Field(600.0, gt=0, le=86_400, description="Longest wait between two attempts.")

    def delay_s(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1-based)."""
        return min(self.backoff_s * 2 ** min(max(attempts - 1, 0), 30), self.max_backoff_s)


class DimseDestination(_Strict):
    """A DICOM node taking C-STORE (a PACS, a viewer, Orthanc)."""

    kind: Literal["dimse"]
    ae_title: str = Field(pattern=_AE_TITLE)
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    calling_ae: str = Field("MEDSERVE", pattern=_AE_TITLE)
    timeout_s: float = Field(30.0, gt=0, le=3600, description="Connection, association and per-response deadline.")
    retry: RetryPolicy = RetryPolicy()

    @property
    def address(self) -> str:
        return f"{self.ae_title.strip()}@{self.host}:{self.port}"


class DicomwebDestination(_Strict):
    """A DICOMweb server taking STOW-RS (``POST {url}/studies``)."""

    kind: Literal["dicomweb"]
    url: str = Field(pattern=r"^https?://[^\s/?#]+[^\s?#]*$", max_length=2048, description="The DICOMweb root, without /studies.")
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="Environment variable holding a bearer token.")
    timeout_s: float = Field(60.0, gt=0, le=3600)
    retry: RetryPolicy = RetryPolicy()

    @property
    def address(self) -> str:
        return self.url

    def bearer_token(self) -> str | None:
        """The token of ``token_env`` now (None without one; empty counts as none)."""
        return (os.environ.get(self.token_env) or None) if self.token_env else None


Destination = Annotated[DimseDestination | DicomwebDestination, Field(discriminator="kind")]


class Send(_Strict):
    """One ``send:`` entry of a route: these outputs of each job it makes go to that destination."""

    destination: str = Field(min_length=1, max_length=64)
    outputs: list[Literal["seg", "sr", "sc"]] = Field(min_length=1)
