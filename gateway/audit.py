"""Append-only JSONL audit trail: who ran which model on which study, and how it went.

DICOM UIDs are stored as SHA-256 digests: stable enough to find every request
about one study, useless for identifying a patient from the log alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


def hash_uid(uid: str) -> str:
    return hashlib.sha256(uid.encode()).hexdigest()


@dataclass
class AuditRecord:
    request_id: str
    key_id: str
    route: str
    model: str = ""
    model_version: str = ""
    study_uids: list[str] = field(default_factory=list)
    series_uids: list[str] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    input_quality: list[str] = field(default_factory=list)  # features outside the model's input quality gate (names only)
    outcome: str = ""
    status_code: int = 0
    latency_ms: float = 0.0

    def add_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> None:
        for uid, bucket in ((study_uid, self.study_uids), (series_uid, self.series_uids), (sop_uid, self.sop_instance_uids)):
            digest = hash_uid(uid) if uid else ""
            if digest and digest not in bucket:
                bucket.append(digest)


class AuditLog:
    """Appends one JSON line per request; ``O_APPEND`` keeps concurrent writers' lines whole."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: AuditRecord) -> None:
        line = json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} | asdict(record)) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
