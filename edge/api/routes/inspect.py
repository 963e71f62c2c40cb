"""POST /api/v1/inspect: one uploaded image -> verdict, score, defects and heatmap (not stored)."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import cv2
import numpy as np
from fastapi import APIRouter, HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from edge.api.auth import Reader
from edge.api.dependencies import ServicesDep
from edge.api.image_header import FORMATS, ImageHeader, read_header
from edge.api.schemas import InspectOut
from edge.line.defect_grading import DefectGrading
from edge.storage.files import encode_image
from qc.decision import decide
from qc.imageio import ImageReadError, to_rgb_uint8
from qc.render import heatmap_to_rgb, overlay

router = APIRouter(prefix="/api/v1", tags=["inspect"])
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the image's bytes
MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


def not_an_image(name: str, content_type: str | None, size: int) -> HTTPException:
    return HTTPException(
        422,
        detail=f"upload {name!r} ({content_type or 'no content type'}, {size} bytes) is not "
        f"an image OpenCV can decode ({FORMATS})",
    )


def check_size(data: bytes, name: str, content_type: str | None, max_megapixels: float, inferencer) -> None:
    """From the image's header, before any decoding: 413 over the pixel limit, 422 for an image
    too small for the model to make sense of (qc.tiling.min_side_px)."""
    header = read_header(data)
    if header is None:
        raise not_an_image(name, content_type, len(data))
    if header.pixels > max_megapixels * 1_000_000:
        raise HTTPException(
            413,
            detail=f"upload {name!r} is {_described(header)} ({header.pixels / 1e6:.1f} megapixels); "
            f"the limit is {max_megapixels:g} megapixels (api.max_upload_megapixels)",
        )
    if min(header.width, header.height) < inferencer.min_side_px:
        raise HTTPException(
            422,
            detail=f"upload {name!r} is {_described(header)}, too small to inspect: model "
            f"{inferencer.name} {inferencer.version} cuts {inferencer.card.tiling.tile_px} px tiles "
            f"and needs at least {inferencer.min_side_px} px a side (half a tile; a smaller image "
            "would be mostly mirrored padding)",
        )


def _described(header: ImageHeader) -> str:
    return f"a {header.format} of {header.width} x {header.height} pixels"


async def read_image_field(request: Request, max_body: int, too_large: HTTPException) -> UploadFile:
    """The multipart file field ``image``. The body is counted as it arrives and reading stops once
    it passes ``max_body`` (413): a chunked upload has no Content-Length to refuse up front, and
    the parser would otherwise spool all of it to a temporary file first."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise no_image_field()

    async def counted() -> AsyncIterator[bytes]:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise too_large  # the parser closes (and so deletes) its temporary file
            yield chunk

    try:
        form = await MultiPartParser(request.headers, counted(), max_files=1, max_fields=8).parse()
    except MultiPartException as exc:
        raise HTTPException(400, detail=exc.message) from exc
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise no_image_field()
    return upload


def no_image_field() -> HTTPException:
    return HTTPException(422, detail="send the image as a multipart/form-data file field named 'image'")


def decode_upload(data: bytes, name: str, content_type: str | None) -> np.ndarray:
    """uint8 RGB, or 422 naming what was sent."""
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    if decoded is None:
        raise not_an_image(name, content_type, len(data))
    if decoded.ndim == 3 and decoded.shape[2] >= 3:
        decoded = cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGBA if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    try:
        return to_rgb_uint8(decoded, source=name)
    except ImageReadError as exc:
        raise HTTPException(422, detail=str(exc)) from exc


def _png_base64(rgb: np.ndarray) -> str:
    return base64.b64encode(encode_image(rgb, ".png")).decode()


def inspect_image(services, image: np.ndarray) -> dict[str, Any]:
    inferencer = services.inspector()
    config = services.config
    result = inferencer.infer(image)
    decision = decide(result, inferencer.card, px_per_mm=config.station.px_per_mm, rules=config.rules)
    # Typed and graded as the line does, so an uploaded image and a unit from the camera agree.
    decision = DefectGrading(config.severity).apply(image, result.heatmap, decision, inferencer)
    return {
        "verdict": decision.verdict,
        "score": float(decision.score),
        "defects": decision.defects,
        "image_size_px": image.shape[:2],
        "model_name": inferencer.name,
        "model_version": inferencer.version,
        "thresholds": {"image": decision.image_threshold, "pixel": decision.pixel_threshold},
        "infer_ms": float(result.infer_ms),
        "heatmap_png_base64": _png_base64(heatmap_to_rgb(result.heatmap)),
        "overlay_png_base64": _png_base64(
            overlay(image, result.heatmap, threshold=decision.pixel_threshold)
        ),
    }


@router.post("/inspect", response_model=InspectOut, openapi_extra=MULTIPART_BODY)
async def inspect(request: Request, services: ServicesDep, _: Reader) -> dict[str, Any]:
    """Upload one image as multipart field ``image``; the unit is inspected, not stored."""
    api = services.config.api
    limit = int(api.max_upload_mb * 1024 * 1024)
    too_large = HTTPException(413, detail=f"upload larger than {api.max_upload_mb:g} MB")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + MULTIPART_OVERHEAD:
        raise too_large  # refused before the body is read
    inferencer = services.inspector()
    if inferencer is None:
        raise HTTPException(503, detail="no model loaded on this station")
    upload = await read_image_field(request, limit + MULTIPART_OVERHEAD, too_large)
    try:
        data = await upload.read(limit + 1)
    finally:
        await upload.close()
    if len(data) > limit:
        raise too_large
    name = upload.filename or "image"
    check_size(data, name, upload.content_type, api.max_upload_megapixels, inferencer)
    slots = request.app.state.inspection_slots
    if not slots.try_take():
        raise HTTPException(
            503,
            detail=f"the station is inspecting {slots.limit} upload(s) already, its limit "
            "(api.max_concurrent_inspections); try again shortly",
            headers={"Retry-After": str(slots.retry_after_s())},
        )
    started = time.monotonic()
    try:
        # Decoding a large image takes seconds: in a worker thread, like the inspection, so the
        # event loop keeps answering. If the client goes away, the await still waits for the
        # thread to finish (anyio's default), so the slot is never given back early.
        return await run_in_threadpool(
            lambda: inspect_image(services, decode_upload(data, name, upload.content_type))
        )
    finally:
        slots.give_back(time.monotonic() - started)
