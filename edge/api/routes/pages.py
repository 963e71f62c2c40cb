"""The web pages served by the station: the manager's page (the live station page is ``/``).

Plain HTML files with their own CSS and JS, no build step; they read the same REST API as any
client, so a page can never show a figure the API does not.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, Response

router = APIRouter(include_in_schema=False)
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}  # a station update must show at the next reload


@router.get("/manager", response_class=FileResponse)
def manager_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "manager.html", media_type="text/html", headers=NO_CACHE)


@router.get("/favicon.ico")
def favicon() -> Response:
    """No icon: browsers ask every origin for one, and a 404 is an error in every page's console."""
    return Response(status_code=204)
