"""Settings come from MEDSERVE_* environment variables and refuse nonsense."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.config import Settings


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDSERVE_TRITON_GRPC_URL", "triton:8001")
    monkeypatch.setenv("MEDSERVE_PORT", "9090")
    settings = Settings()
    assert settings.triton_grpc_url == "triton:8001"
    assert settings.port == 9090


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MEDSERVE_PORT", "0"),  # not a port
        ("MEDSERVE_TRITON_TIMEOUT_S", "0"),  # a deadline must be positive
        ("MEDSERVE_MAX_UPLOAD_BYTES", "-1"),
    ],
)
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.removeprefix("MEDSERVE_").lower()):
        Settings()
