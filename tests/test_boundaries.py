"""The package boundaries of docs/architecture.md hold at import time."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("gateway.main", ["torch", "export", "monai"]),  # the gateway image has no torch
        ("contract", ["torch", "fastapi", "tritonclient", "export", "gateway"]),  # both sides import it; it imports neither
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


def test_export_and_gateway_share_the_contract() -> None:
    """One Task, one OutputMeaning, one ModelCard: the writer's and the reader's are the same objects."""
    import contract
    from export import spec
    from export.triton import parameters
    from gateway import catalog

    assert spec.Task is contract.Task and spec.OutputSpec.model_fields["meaning"].annotation is contract.OutputMeaning
    assert catalog.ModelCard is contract.ModelCard and parameters.CONTRACT_VERSION == contract.CONTRACT_VERSION
