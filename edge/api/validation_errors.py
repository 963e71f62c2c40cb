"""The API's 422 for a request that fails validation, safe for any input the client sent.

FastAPI's own handler echoes each error's ``input``; a JSON body holding a lone-surrogate escape
(``"a\\ud800"``) decodes to a string UTF-8 cannot encode, so writing that 422 raised and the client
got a 500. Here every string in the errors is made encodable first (the surrogate becomes the text
``\\ud800``); the body keeps FastAPI's shape: ``{"detail": [{"type", "loc", "msg", "input", ...}]}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def encodable(value: Any) -> Any:
    """``value`` with every string UTF-8 can't encode written with backslash escapes instead."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encodable(v) for v in value]
    return value


async def _validation_error_422(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": encodable(jsonable_encoder(exc.errors()))})


def answer_validation_errors_with_422(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error_422)
