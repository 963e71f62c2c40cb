"""Admin and station routes: API keys, and the model this station runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from edge.api.auth import Admin, Reader
from edge.api.dependencies import ServicesDep, StoreDep
from edge.api.schemas import KeyCreatedOut, KeyIn, KeyOut
from edge.storage.keys import KeyRefused
from edge.text_fields import Printable, Text

router = APIRouter(prefix="/api/v1", tags=["admin"])


@router.get("/keys", response_model=list[KeyOut])
def list_keys(store: StoreDep, _: Admin) -> list[KeyOut]:
    return [KeyOut(**vars(k)) for k in store.keys.list()]


@router.post("/keys", response_model=KeyCreatedOut, status_code=201)
def create_key(key: KeyIn, store: StoreDep, _: Admin) -> KeyCreatedOut:
    try:
        token = store.keys.create(key.name, key.role)
    except KeyRefused as exc:
        raise HTTPException(409, detail=str(exc)) from exc
    return KeyCreatedOut(name=key.name, role=key.role, token=token)


@router.delete("/keys/{name}", status_code=204)
def revoke_key(name: Text, store: StoreDep, _: Admin) -> None:
    try:
        store.keys.revoke(name)
    except KeyRefused as exc:
        raise HTTPException(404, detail=str(exc)) from exc


@router.get("/model")
def station_model(services: ServicesDep, _: Reader) -> dict[str, Any]:
    """The model this station runs: its card (thresholds, classes, metrics, training record)."""
    inferencer = services.inspector()
    if inferencer is None:
        if services.model is None:
            raise HTTPException(503, detail="no model loaded on this station")
        return {"name": services.model.name, "version": services.model.version, "card": None}
    return {
        "name": inferencer.name,
        "version": inferencer.version,
        "card": inferencer.card.model_dump(mode="json"),
    }


class ModelSwapIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: Annotated[str, Printable(min_length=1, max_length=1024)] = Field(
        description="models/<name>/<version> or models/<name>"
    )


@router.put("/model")
def swap_model(body: ModelSwapIn, services: ServicesDep, _: Admin) -> dict[str, Any]:
    """Switch this station to another registered model (admin). Refused models change nothing."""
    from qc.card import ModelRefused

    old = services.model
    try:
        info = services.swap_model(body.dir)
    except (ModelRefused, OSError, ValueError) as exc:
        # OSError / ValueError: a path the OS cannot even look at (too long, a NUL byte).
        still = f"; still serving {old.name} {old.version}" if old else ""
        raise HTTPException(422, detail=f"model refused: {exc}{still}") from exc
    return {"name": info.name, "version": info.version, "dir": info.dir, "thresholds": info.thresholds}
