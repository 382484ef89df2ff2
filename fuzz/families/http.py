"""HTTP-level abuse of well-framed requests (the framing itself is uvicorn's business):
header count and size, odd Content-Type and Accept, odd query strings; and every route that
takes bytes, with every model and output format, on unmodified real files."""

from __future__ import annotations

from ..cases import Request
from ..envelopes import DICOM, FORMATS, MODELS, STOW, multipart_related, boundary, predict_target, random_predict_target
from . import family

_CONTENT_TYPES = (
    b"application/dicom; charset=utf-8",
    b"APPLICATION/DICOM",
    b"application/dicom; transfer-syntax=1.2.3",
    b"multipart/related",
    b'multipart/related; type="application/dicom"',
    b"multipart/form-data; boundary=",
    b"application/zip; q=abc",
    b"text/plain",
    b"application/json",
    b"",
    b";;;",
    b"application/" + b"x" * 8192,
    b"multipart/related; boundary=a; boundary=b",
    b"image/png",
)
_ACCEPTS = (
    b"*/*;q=abc",
    b"image/png;q=0",
    b"application/dicom+json",
    b"application/dicom;transfer-syntax=*",
    b"text/html, application/xhtml+xml",
    b"",
    b",,,,",
    b"application/json;q=0.5, image/png;q=2",
    b"*/*;q=1e309",
    b", ".join(b"type%d/sub%d;q=0.%d" % (i, i, i % 10) for i in range(2000)),
)


@family
def header_abuse(rng, corpus):
    """Many headers (100 to 20,000), one huge header (64 KB to 8 MB), odd Content-Type,
    odd Accept, an API key in a header the gateway does not expect."""
    data = corpus.bytes(rng.choice(("CT_small.dcm", "MR_small.dcm")))
    kind = rng.choice(("many", "huge", "content_type", "accept", "auth"))
    headers: list[tuple[bytes, bytes]] = [(b"Content-Type", DICOM)]
    if kind == "many":
        count = rng.choice((100, 1000, 5000, 20000))
        headers += [(b"X-Fuzz-%d" % i, b"v") for i in range(count)]
        note = f"{count} headers"
    elif kind == "huge":
        size = rng.choice((64 << 10, 1 << 20, 8 << 20))
        headers.append((rng.choice((b"X-Fuzz", b"Cookie", b"Accept")), b"a" * size))
        note = f"{size} B header"
    elif kind == "content_type":
        headers = [(b"Content-Type", rng.choice(_CONTENT_TYPES))]
        note = "Content-Type"
    elif kind == "accept":
        headers.append((b"Accept", rng.choice(_ACCEPTS)))
        note = "Accept"
    else:
        headers.append(rng.choice(((b"Authorization", b"Bearer " + b"k" * 4096), (b"Authorization", b"Basic \xff\xfe"), (b"X-API-Key", b""))))
        note = "auth"
    target = STOW if kind == "content_type" and rng.random() < 0.3 else random_predict_target(rng)
    return Request("POST", target, data, tuple(headers), note)


_FORMAT_VALUES = ("", "JSON", "Json", "seg%00", "..%2F..%2Fetc", "x" * 5000, "json&format=png", "nifti;", "%ff%fe", "heatmap%20", "dicom", "seg,png")
_SLICE_VALUES = ("-1", "0", "1000000000", "abc", "nan", "1e3", "99999999999999999999999", "", "-0", "1.5", "%00")


@family
def query_abuse(rng, corpus):
    """Odd ``format`` and ``slice`` values, repeated parameters, an API key in the query,
    odd model names (unknown, long, traversal, non-ASCII), and the jobs API's own inputs."""
    data = corpus.bytes(rng.choice(("CT_small.dcm", "pynetdicom:CTImageStorage.dcm")))
    kind = rng.choice(("format", "slice", "repeated", "api_key", "model", "jobs"))
    if kind == "jobs":
        return _jobs_abuse(rng, data)
    model = rng.choice(MODELS)
    if kind == "format":
        target = predict_target(model, rng.choice(_FORMAT_VALUES))
    elif kind == "slice":
        target = predict_target(model, rng.choice(("png", "heatmap", "json")), slice=rng.choice(_SLICE_VALUES))
    elif kind == "repeated":
        target = predict_target(model, "png") + "&format=seg&slice=1&slice=2"
    elif kind == "api_key":
        target = predict_target(model, "json", api_key="secret-fuzz-key", key="secret-fuzz-key")
    else:
        name = rng.choice(("no_such_model", "m" * 2000, "..%2F..%2Fetc%2Fpasswd", "%C3%A9", "%00", "ct_nodule_classifier%20"))
        target = f"/v1/models/{name}/predict"
    return Request("POST", target, data, ((b"Content-Type", DICOM),), kind)


_ODD_TEXT = ("", "x" * 5000, "..%2F..%2Fetc", "%00", "%C3%A9", "1%27%20OR%20%271%27%3D%271", "nan", "-1", "0" * 32)


def _jobs_abuse(rng, data: bytes):
    """The jobs API: odd job ids, filters, result formats, Idempotency-Keys and webhook URLs;
    and the deliveries API: odd delivery ids, filters, retries of what does not exist."""
    from ..cases import Request

    odd = rng.choice(_ODD_TEXT)
    shape = rng.choice(("status", "result", "list", "idempotency", "webhook", "delivery", "deliveries", "retry"))
    if shape == "delivery":
        return Request("GET", f"/v1/deliveries/{odd}", note="delivery status")
    if shape == "deliveries":
        key = rng.choice(("state", "destination", "job_id", "limit"))
        return Request("GET", f"/v1/deliveries?{key}={odd}", note="deliveries list")
    if shape == "retry":
        return Request("POST", f"/v1/deliveries/{odd}/retry", b"", note="delivery retry")
    if shape == "status":
        return Request("GET", f"/v1/jobs/{odd}", note="jobs status")
    if shape == "result":
        return Request("GET", f"/v1/jobs/{'0' * 32}/result?format={odd}", note="jobs result")
    if shape == "list":
        key = rng.choice(("state", "model", "source", "study_uid", "series_uid", "limit"))
        return Request("GET", f"/v1/jobs?{key}={odd}", note="jobs list")
    target = predict_target(rng.choice(MODELS), "json").replace("/predict", "/jobs", 1)
    if shape == "webhook":
        target += "&webhook_url=" + rng.choice(("ftp://x", "http://" + "a" * 3000, odd, "javascript:alert(1)"))
        return Request("POST", target, data, ((b"Content-Type", DICOM),), "jobs webhook")
    return Request("POST", target, data, ((b"Content-Type", DICOM), (b"Idempotency-Key", odd.encode()[:8192])), "jobs idempotency")


_ROUTE_SEEDS = ("CT_small.dcm", "693_UNCI.dcm", "pynetdicom:CTImageStorage.dcm", "693_J2KI.dcm", "MR_small.dcm", "emri_small.dcm", "MR_small_RLE.dcm")


@family
def route_shapes(rng, corpus):
    """Unmodified real files to every route that takes bytes: each model × each output
    format (including combinations a model cannot produce), and STOW-RS."""
    name = rng.choice(_ROUTE_SEEDS)
    data = corpus.bytes(name)
    if rng.random() < 0.2:
        body, content_type = multipart_related([data] * rng.randint(1, 3), boundary(rng))
        return Request("POST", STOW, body, ((b"Content-Type", content_type),), f"{name} STOW")
    model, output = rng.choice(MODELS), rng.choice(FORMATS)
    return Request("POST", predict_target(model, output), data, ((b"Content-Type", DICOM),), name)


#: Path pieces a hostile client puts under the page's prefix: traversal (plain, encoded,
#: doubled), NUL and other control bytes, bytes that are not UTF-8, absolute paths, a long name.
_PAGE_PATHS = (
    "../__init__.py", "..%2f__init__.py", "%2e%2e/%2e%2e/main.py", "....//....//etc/passwd", "%00", "index.html%00.js",
    "%ff%fe%fd", "//etc/passwd", "/proc/self/environ", "app.js/..", "app.js/../../config.py", "%5c..%5cmain.py",
    "a" * 4000, "index.html?%00=%ff", "style.css;x", "%252e%252e/main.py", "~root", ".", "..", "con", "app.js%20",
)
#: Model names the read-only model routes are asked for: real ones, unknown ones, hostile ones.
_MODEL_NAMES = (*MODELS, "nope", "..%2f..", "%00", "a" * 2000, "%ff", "ct_nodule_classifier%2fconfig.pbtxt", "%20")


@family
def page_and_model_reads(rng, corpus):
    """The page's static files and the read-only model routes it calls (export report, drift)
    with hostile paths and names, and writes where only reads are served."""
    if rng.random() < 0.5:
        target = "/ui/" + rng.choice(_PAGE_PATHS)
    else:
        target = f"/v1/models/{rng.choice(_MODEL_NAMES)}/{rng.choice(('report', 'drift'))}"
    method = rng.choice(("GET", "GET", "GET", "POST", "PUT", "DELETE"))
    body = b"" if method == "GET" else bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
    return Request(method, target, body, (), "page/model read")
