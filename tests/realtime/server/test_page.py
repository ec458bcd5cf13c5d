"""The call page and its files are served by the app itself (nothing from a CDN)."""

from __future__ import annotations

import re

from starlette.applications import Starlette
from starlette.testclient import TestClient

from realtime.server.page import WEB_DIR, page_routes


def test_the_page_is_served_at_the_root_with_its_scripts_and_styles() -> None:
    client = TestClient(Starlette(routes=page_routes()))
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for asset in ("/static/call.js", "/static/style.css"):
        assert asset in page.text
        reply = client.get(asset)
        assert reply.status_code == 200 and reply.text
    worklets = client.get("/static/audio-worklets.js")
    assert "registerProcessor" in worklets.text
    assert client.get("/static/missing.js").status_code == 404


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for path in WEB_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), path.name
        assert not re.search(r"import\s.*from\s+[\"']https?://", text), path.name
