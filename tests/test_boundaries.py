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
        ("postprocessing", ["torch", "monai", "cc3d", "fill_voids", "skimage", "fastapi", "tritonclient", "gateway", "export"]),  # numpy + scipy.ndimage
        ("medserve.cli", ["torch", "fastapi", "tritonclient"]),  # heavy imports happen per command
        ("jobs", ["torch", "fastapi", "tritonclient", "gateway", "export", "pydicom"]),  # the job store and engine: SQLAlchemy only
        ("dimse.server", ["torch", "fastapi", "tritonclient", "export"]),  # the receiver: pynetdicom, the spool, the store
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


PRODUCT = ("contract", "preprocessing", "postprocessing", "export", "gateway", "jobs", "dimse", "medserve")
TOOLING = ("devtools", "benchmarks", "fuzz", "tests")


@pytest.mark.parametrize("package", PRODUCT)
def test_the_product_never_imports_development_tooling(package: str) -> None:
    """What the wheel installs works without the checkout's tooling: no product module names a
    tooling package in an import, eagerly or inside a function."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in sorted((root / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            )
            offenders += [f"{path.relative_to(root)}: {name}" for name in names if name.split(".")[0] in TOOLING]
    assert offenders == []


def test_the_wheel_holds_the_product_only(tmp_path) -> None:
    """The built wheel: the product packages, no tooling and no demo weights."""
    import zipfile
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path), str(root)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("medserve-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {name.split("/")[0] for name in names if "/" in name and not name.split("/")[0].endswith(".dist-info")}
    assert packages == set(PRODUCT)
    assert not [name for name in names if name.endswith((".pt", ".yaml"))]
