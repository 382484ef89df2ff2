"""A real Orthanc (Debian ``orthanc``) as the hospital PACS of the end-to-end tests: started
on free loopback ports with its own configuration and storage, optionally with its DICOMweb
plugin (Debian ``orthanc-dicomweb``), and stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from .processes import free_ports

__all__ = ["DICOMWEB_PLUGIN", "ORTHANC", "Orthanc", "start_orthanc", "stop_orthanc"]

#: The Orthanc binary (/usr/sbin is not on a normal user's PATH); None when not installed.
ORTHANC = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if os.access("/usr/sbin/Orthanc", os.X_OK) else None)
#: Orthanc's DICOMweb plugin (STOW-RS at ``/dicom-web/studies``); absent without orthanc-dicomweb.
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class Orthanc:
    """A started Orthanc: its REST API on ``http_port``, its DICOM port ``dicom_port``, AE ``aet``."""

    def __init__(self, process: subprocess.Popen, folder: Path, http_port: int, dicom_port: int, aet: str) -> None:
        self.process, self.folder, self.http_port, self.dicom_port, self.aet = process, folder, http_port, dicom_port, aet

    @property
    def dicomweb_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def rest(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json") -> object:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method,
                                         headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def log_tail(self, chars: int = 3000) -> str:
        return (self.folder / "orthanc.log").read_text(errors="replace")[-chars:]


def start_orthanc(
    folder: Path, aet: str, modalities: dict[str, tuple[str, str, int]] | None = None, *, dicomweb: bool = False,
    ports: tuple[int, int] | None = None,
) -> Orthanc:
    """Orthanc with its storage and index in ``folder``, REST and DICOM on ``ports`` (free loopback
    ports when None), AE title ``aet``, knowing ``modalities`` (name → (AE, host, port)), with its
    DICOMweb plugin when ``dicomweb``; serving once ``GET /system`` answers. It accepts C-STORE
    from any AE (``DicomCheckCalledAet`` off, unknown modalities allowed), as a test PACS does."""
    if ORTHANC is None:
        raise FileNotFoundError("Orthanc is not installed (Debian package orthanc)")
    http_port, dicom_port = ports or free_ports(2)
    config = {
        "Name": aet, "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": aet, "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False, "DicomAlwaysAllowStore": True, "DicomCheckModalityHost": False,
        "Plugins": [str(DICOMWEB_PLUGIN)] if dicomweb else [],
        "DicomModalities": {name: list(modality) for name, modality in (modalities or {}).items()},
    }
    if dicomweb:
        config["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orthanc.json").write_text(json.dumps(config))
    log = open(folder / "orthanc.log", "ab")  # noqa: SIM115 - the child holds its own descriptor
    try:
        process = subprocess.Popen([ORTHANC, str(folder / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=folder)
    finally:
        log.close()
    orthanc = Orthanc(process, folder, http_port, dicom_port, aet)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"Orthanc exited: {orthanc.log_tail()}")
        try:
            orthanc.rest("GET", "/system")
            return orthanc
        except OSError:
            if time.monotonic() > deadline:
                stop_orthanc(orthanc)
                raise TimeoutError("Orthanc did not answer GET /system in 60 s") from None
            time.sleep(0.2)


def stop_orthanc(orthanc: Orthanc) -> None:
    """SIGTERM Orthanc by its PID (it exits cleanly), SIGKILL if it has not within 30 s."""
    orthanc.process.terminate()
    try:
        orthanc.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        orthanc.process.kill()
        orthanc.process.wait(timeout=10)
