"""The browser call page: ``/`` serves it, ``/static/...`` its scripts and styles (no CDN)."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent / "web"


def page_routes(web_dir: Path = WEB_DIR) -> list[BaseRoute]:
    index = web_dir / "index.html"

    async def call_page(request: Request) -> Response:
        return FileResponse(index, media_type="text/html; charset=utf-8")

    return [
        Route("/", call_page, methods=["GET", "HEAD"]),
        Mount("/static", app=StaticFiles(directory=web_dir), name="static"),
    ]
