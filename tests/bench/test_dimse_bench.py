"""The DICOM node bench drives real peers: dcmtk's ``storescu`` sends one series to medserve's
receiver, pynetdicom's ``storescp`` and dcmtk's ``storescp`` over one association each, and every
instance lands as a file; medserve's ratios are medians of per-round ratios."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmarks.dimse_bench import RECEIVERS, RateRun, receive_rates, summarize_rates
from devtools.dicomgen import write_ct_series

pytestmark = pytest.mark.skipif(shutil.which("storescu") is None or shutil.which("storescp") is None, reason="dcmtk is not installed")


def test_each_receiver_gets_every_instance_of_one_association(tmp_path: Path) -> None:
    volume = np.random.default_rng(1).integers(-1000, 1000, (4, 64, 64)).astype(np.float32)
    write_ct_series(tmp_path / "series", volume, spacing_mm=(1.0, 0.7, 0.7))
    runs = receive_rates(tmp_path / "series", 4, 1, tmp_path / "work")
    assert sorted(run.receiver for run in runs) == sorted(RECEIVERS)
    assert all(run.files == 4 and run.instances_per_s > 0 for run in runs)


def test_ratios_are_medians_of_the_per_round_ratios() -> None:
    rates = {1: (50.0, 100.0, 500.0), 2: (90.0, 100.0, 600.0), 3: (30.0, 150.0, 300.0)}
    runs = [RateRun(kind, round_, 1.0, rate, 10) for round_, row in rates.items() for kind, rate in zip(RECEIVERS, row)]
    summary = summarize_rates(runs)
    assert summary["median_instances_per_s"] == {"medserve": 50.0, "pynetdicom": 100.0, "dcmtk": 500.0}
    assert summary["medserve_vs_pynetdicom"] == pytest.approx(0.5)  # of 0.5, 0.9, 0.2
    assert summary["medserve_vs_dcmtk"] == pytest.approx(0.1)  # of 0.1, 0.15, 0.1
