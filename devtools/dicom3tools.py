"""dicom3tools' ``dciodvfy`` (Debian ``dicom3tools``) as the tests' independent judge of the
DICOM objects medserve writes (SEG, SR, secondary capture): it checks each against the IODs of
the DICOM standard, module by module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["dciodvfy_errors"]


def dciodvfy_errors(content: bytes | Path, folder: Path) -> list[str]:
    """The ``Error`` lines dciodvfy reports on ``content`` (an object's bytes, written into
    ``folder`` first, or a file); warnings are not errors. Fails when dciodvfy is missing."""
    dciodvfy = shutil.which("dciodvfy")
    assert dciodvfy, "dciodvfy (Debian package dicom3tools) is required: make install-system-tools"
    if isinstance(content, Path):
        path = content
    else:
        path = folder / "object.dcm"
        path.write_bytes(content)
    report = subprocess.run([dciodvfy, str(path)], capture_output=True, text=True, timeout=120)
    return [line for line in (report.stdout + report.stderr).splitlines() if line.startswith("Error")]
