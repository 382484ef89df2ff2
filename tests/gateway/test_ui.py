"""The page's static layer (gateway/ui): what it serves, the headers it serves it with, what it
leaves to the API, and that its files are shipped in the wheel and hold no inline code (the
Content-Security-Policy forbids it, so inline code would simply not run)."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tomllib
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from gateway.ui import CONTENT_SECURITY_POLICY, STATIC_DIR, StaticPage

ROOT = Path(__file__).resolve().parents[2]


async def api(scope, receive, send):
    """Stands for the gateway behind the page layer: answers where the request went."""
    await JSONResponse({"reached": "api", "path": scope["path"]})(scope, receive, send)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(StaticPage(api), follow_redirects=False)


def test_the_root_and_the_bare_prefix_redirect_to_the_page(client) -> None:
    for path in ("/", "/ui"):
        response = client.get(path)
        assert response.status_code == 307
        assert response.headers["location"] == "/ui/"


def test_the_page_is_served_with_a_strict_content_security_policy(client) -> None:
    response = client.get("/ui/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<main" in response.text
    policy = response.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in policy and "img-src 'self' data: blob:" in policy and "style-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_modules_are_served_as_javascript(client) -> None:
    response = client.get("/ui/app.js")
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    assert "content-security-policy" in response.headers


def _status_of_raw_get(path: str) -> int:
    """The status StaticPage answers for ``path`` exactly as a client sent it (HTTP clients
    resolve dot segments before sending; a hostile one need not)."""
    started: list[int] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            started.append(message["status"])

    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [], "scheme": "http", "server": ("test", 80), "client": ("test", 1), "http_version": "1.1"}
    asyncio.run(StaticPage(api)(scope, receive, send))
    return started[0]


def _errors(code: str) -> float:
    return REGISTRY.get_sample_value("medserve_errors_total", {"code": code}) or 0.0


def test_a_missing_file_or_a_write_is_a_json_error_with_a_stable_code(client) -> None:
    """Counted in medserve_errors_total like the API's errors; the path is not echoed."""
    not_found, not_allowed = _errors("not_found"), _errors("method_not_allowed")
    missing = client.get("/ui/nothing-here.js")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found" and missing.json()["request_id"]
    assert missing.headers["x-request-id"] == missing.json()["request_id"]
    escape = client.get("/ui/../gateway/main.py")
    assert escape.status_code in (404, 200) and "create_app" not in escape.text
    write = client.post("/ui/index.html", content=b"x")
    assert write.status_code == 405
    assert write.json()["code"] == "method_not_allowed"
    assert "nothing-here" not in missing.text
    for the_folder_by_another_name in ("/ui/.", "/ui/app.js/..", "/ui/./"):  # as sent: no client normalises them
        assert _status_of_raw_get(the_folder_by_another_name) == 404
    assert _errors("not_found") - not_found >= 1 and _errors("method_not_allowed") - not_allowed == 1


def test_every_other_path_goes_on_to_the_api(client) -> None:
    for path in ("/v1/models", "/healthz", "/uix", "/docs"):
        assert client.get(path).json() == {"reached": "api", "path": path}


def test_the_static_files_hold_no_inline_script_or_style() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts and all('src="' in attrs and not body.strip() for attrs, body in scripts)
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"\sstyle\s*=", text, flags=re.I), path.name
        assert not re.search(r"\son[a-z]+\s*=\s*[\"']", text, flags=re.I), path.name  # onclick="..." and the like
        assert "innerHTML" not in text and "eval(" not in text, path.name
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), f"{path.name} names another origin"


def test_every_module_the_page_imports_is_shipped() -> None:
    imports = {
        name
        for path in STATIC_DIR.glob("*.js")
        for name in re.findall(r"""from\s+["']\./([^"']+)["']""", path.read_text())
    }
    assert "app.js" in (STATIC_DIR / "index.html").read_text()
    assert imports and all((STATIC_DIR / name).is_file() for name in imports)


def test_the_static_files_are_package_data_of_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["gateway.ui"]
    for path in STATIC_DIR.iterdir():
        relative = path.relative_to(STATIC_DIR.parent).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
