"""STOW-RS from the real dicomweb-client: instances in, routed model predictions out."""

from __future__ import annotations

import json

import numpy as np
import pydicom
from dicomweb_client.api import DICOMwebClient

from devtools.dicomgen import write_ct_series
from devtools.phantoms import chest_volume


def test_stow_rs_runs_the_matching_models(live_gateway, tmp_path, testdata) -> None:
    volume, _ = chest_volume(np.random.default_rng(9), slices=2, size=256, nodules=1)
    ct = [pydicom.dcmread(p) for p in write_ct_series(tmp_path, volume, spacing_mm=(2.5, 1.4, 1.4))]
    mr = pydicom.dcmread(testdata("MR_small.dcm"))  # no CT model routes MR

    client = DICOMwebClient(url=f"{live_gateway['url']}/dicomweb")
    response = client.store_instances(datasets=[*ct, mr])

    stored = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert stored == {ds.SOPInstanceUID for ds in [*ct, mr]}
    assert "FailedSOPSequence" not in response
    assert response[0x00110010].value == "MEDSERVE"
    payload = json.loads(response[0x00111001].value)
    classifier = payload["predictions"]["ct_nodule_classifier"]
    assert {i["sop_instance_uid"] for i in classifier["instances"]} == {ds.SOPInstanceUID for ds in ct}
    assert all(abs(sum(p["probability"] for p in i["probabilities"]) - 1) < 1e-5 for i in classifier["instances"])
