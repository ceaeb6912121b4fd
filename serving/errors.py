"""One error shape for every 4xx/5xx: ``{"detail": [{"loc", "msg", "type", "unknown"?}]}``.

Validation errors never echo the submitted values (they may hold personal data); unexpected
errors become a 500 with a reference id and no internals, logged without free text.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.schemas import EVENT_TAGS, ErrorResponse

logger = logging.getLogger("serving")


class ApiError(Exception):
    """An error the API reports as ``status`` with one located message."""

    def __init__(
        self,
        status: int,
        loc: Sequence[str | int],
        msg: str,
        type_: str,
        *,
        unknown: Sequence[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.item: dict[str, Any] = {"loc": list(loc), "msg": msg, "type": type_}
        if unknown is not None:
            self.item["unknown"] = list(unknown)
        self.headers = dict(headers or {})


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for ``statuses``, all with the :class:`ErrorResponse` body."""
    return {status: {"model": ErrorResponse} for status in statuses}


def _body(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"detail": items}


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(_body([exc.item]), status_code=exc.status, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
        if len(loc) > 2 and loc[0] == "body" and loc[1] in EVENT_TAGS:
            del loc[1]  # the union member's tag, not a field of the request
        items.append({"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type"))})
    return JSONResponse(_body(items), status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    item = {"loc": [], "msg": str(exc.detail), "type": "http_error"}
    return JSONResponse(_body([item]), status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    route = getattr(request.scope.get("route"), "path", "unmatched")
    frames = "".join(traceback.format_tb(exc.__traceback__))  # no message: it may hold input
    logger.error(
        "unhandled_error ref=%s route=%s type=%s\n%s", reference, route, type(exc).__name__, frames
    )
    item = {"loc": [], "msg": f"internal error (ref {reference})", "type": "internal_error"}
    return JSONResponse(_body([item]), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers above on ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
