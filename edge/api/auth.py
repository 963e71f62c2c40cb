"""The routes' key checks: who is calling (a bearer token or X-API-Key) and whether their role
may use the route. The keys themselves are stored by edge.storage.keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from edge.storage.keys import ANONYMOUS, Principal


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _principal(request: Request, needed: str, *, anonymous_ok: bool) -> Principal:
    services = request.app.state.services
    token = _token(request)
    if token is None:
        if anonymous_ok:
            return ANONYMOUS
        raise HTTPException(
            401,
            detail=f"this route needs an API key with role {needed} or above "
            "(header 'Authorization: Bearer <token>' or 'X-API-Key'; make one with `qc keys create`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = services.store.keys.verify(token)
    if principal is None:
        raise HTTPException(
            401, detail="the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"}
        )
    if not principal.may(needed):
        raise HTTPException(
            403, detail=f"key {principal.name!r} has role {principal.role}; this route needs {needed}"
        )
    return principal


def require(role: str):
    """A dependency that admits a valid key of ``role`` or above, always (mutating routes)."""

    def dependency(request: Request) -> Principal:
        return _principal(request, role, anonymous_ok=False)

    return dependency


def read_access(request: Request) -> Principal:
    """Read routes: open unless ``api.require_keys`` (by default: unless the API listens on a
    loopback address only); a key that is sent must still be valid."""
    open_reads = not request.app.state.services.config.api.reads_need_key()
    return _principal(request, "viewer", anonymous_ok=open_reads)


Reader = Annotated[Principal, Depends(read_access)]
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
