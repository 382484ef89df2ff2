"""C-ECHO a DICOM node: the receiver's liveness probe (``python -m dimse.echo [host] [port]``,
exit status 0 when it answers success) and the readiness check of whoever starts it."""

from __future__ import annotations

import sys
import time

from pynetdicom import AE
from pynetdicom.sop_class import Verification


def echo(host: str, port: int, ae_title: str = "MEDSERVE", *, calling_ae: str = "MEDSERVE-PROBE", timeout_s: float = 5.0) -> bool:
    """Whether ``ae_title`` at ``host:port`` accepts an association and answers C-ECHO 0x0000."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    ae.connection_timeout = timeout_s
    assoc = ae.associate(host, port, ae_title=ae_title)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0x0000
    finally:
        assoc.release()


def wait_for_echo(host: str, port: int, ae_title: str = "MEDSERVE", timeout_s: float = 30.0, alive=lambda: True) -> bool:  # noqa: ANN001
    """Poll :func:`echo` until it succeeds (True), ``timeout_s`` passes or ``alive()`` turns
    False (False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive():
        if echo(host, port, ae_title, timeout_s=2.0):
            return True
        time.sleep(0.2)
    return False


if __name__ == "__main__":
    import os

    arguments = sys.argv[1:]
    host = arguments[0] if arguments else "127.0.0.1"
    port = int(arguments[1]) if len(arguments) > 1 else int(os.environ.get("MEDSERVE_DIMSE_PORT", "11112"))
    sys.exit(0 if echo(host, port, os.environ.get("MEDSERVE_DIMSE_AE_TITLE", "MEDSERVE")) else 1)
