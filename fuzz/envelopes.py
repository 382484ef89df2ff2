"""How DICOM bytes reach the gateway: the routes that take bytes, the output formats, and the
bodies (one instance, STOW-RS multipart/related, multipart/form-data, ZIP)."""

from __future__ import annotations

import io
import random
import zipfile

from gateway.outputs.registry import OutputFormat

from .cases import Request

#: The demo models (model_repository/), each with the output formats it may be asked for.
MODELS = (
    "ct_nodule_classifier",
    "ct_nodule_classifier_cam",
    "ct_nodule_segmenter",
    "ct_nodule_segmenter_3d",
    "ct_pet_nodule_classifier",
)
#: Every output format the gateway registers: a new one is fuzzed as soon as it exists.
FORMATS = tuple(f.value for f in OutputFormat)
#: The 3D segmenter runs sliding-window inference (costly on 2 CPU cores): asked less often.
MODEL_WEIGHTS = (4, 2, 3, 1, 2)
STOW = "/dicomweb/studies"
DICOM = b"application/dicom"


def predict_target(model: str, output: str | None = None, **query: str) -> str:
    params = ({"format": output} if output else {}) | query
    return f"/v1/models/{model}/predict" + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


#: The share of prediction bodies sent to the async jobs API instead (same bodies; a 202, and
#: the job fails with the code predict would answer: the job engine must survive them too).
JOBS_SHARE = 0.1


def random_predict_target(rng: random.Random) -> str:
    model = rng.choices(MODELS, MODEL_WEIGHTS)[0]
    target = predict_target(model, rng.choice((None, *FORMATS)))
    return target.replace("/predict", "/jobs", 1) if rng.random() < JOBS_SHARE else target


def boundary(rng: random.Random) -> str:
    return "fz" + "".join(rng.choice("0123456789abcdef") for _ in range(24))


def multipart_related(parts: list[bytes], mark: str, part_type: bytes = DICOM) -> tuple[bytes, bytes]:
    """STOW-RS body (PS3.18 §10.5): each instance a part with Content-Type application/dicom."""
    chunks = [b"--%s\r\nContent-Type: %s\r\n\r\n%s\r\n" % (mark.encode(), part_type, p) for p in parts]
    body = b"".join(chunks) + b"--%s--\r\n" % mark.encode()
    return body, b'multipart/related; type="application/dicom"; boundary=' + mark.encode()


def form_data(fields: list[tuple[bytes, bytes]], mark: str, part_type: bytes = DICOM) -> tuple[bytes, bytes]:
    """multipart/form-data with one file field per (field name, bytes)."""
    chunks = [
        b'--%s\r\nContent-Disposition: form-data; name="%s"; filename="f%d.dcm"\r\nContent-Type: %s\r\n\r\n%s\r\n'
        % (mark.encode(), name, i, part_type, data)
        for i, (name, data) in enumerate(fields)
    ]
    return b"".join(chunks) + b"--%s--\r\n" % mark.encode(), b"multipart/form-data; boundary=" + mark.encode()


def zip_of(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression) as handle:
        for name, data in members:
            handle.writestr(name, data)
    return archive.getvalue()


def dicom_request(rng: random.Random, instances: list[bytes], note: str = "") -> Request:
    """``instances`` sent the way a random sender would: one body per instance to a random
    model and format, STOW-RS to /dicomweb/studies, form fields, or a ZIP."""
    shape = rng.choices(("single", "stow", "form", "zip"), (6, 2, 1, 1))[0]
    if shape == "single" and len(instances) == 1:
        return Request("POST", random_predict_target(rng), instances[0], ((b"Content-Type", DICOM),), note)
    if shape == "zip":
        body = zip_of([(f"series/{i}.dcm", data) for i, data in enumerate(instances)])
        return Request("POST", random_predict_target(rng), body, ((b"Content-Type", b"application/zip"),), note + " (zip)")
    if shape == "form":
        body, content_type = form_data([(b"file", data) for data in instances], boundary(rng))
        return Request("POST", random_predict_target(rng), body, ((b"Content-Type", content_type),), note + " (form)")
    body, content_type = multipart_related(instances, boundary(rng))
    target = STOW if shape == "stow" or rng.random() < 0.5 else random_predict_target(rng)
    return Request("POST", target, body, ((b"Content-Type", content_type), (b"Accept", b"application/json")), note + " (stow)")
