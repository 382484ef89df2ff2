"""The package boundaries of ARCHITECTURE.md hold at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("gateway.main", ["torch", "export", "monai"]),  # the gateway image has no torch
        ("preprocessing", ["torch", "fastapi", "tritonclient", "gateway", "export"]),  # pure numpy + pydicom
        ("medserve.cli", ["torch", "fastapi", "tritonclient"]),  # heavy imports happen per command
    ],
)
def test_module_does_not_import(module: str, forbidden: list[str]) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        f"print(','.join(sorted(m for m in {forbidden!r} if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"
