"""The HTTP service: a JSON API over a :class:`~cirlab.search.SearchEngine` and the search page.

Routes (OpenAPI documentation at ``/docs``):

* ``GET /health`` — liveness and gallery size;
* ``GET /api/info`` — categories, limits and what the index holds (the page reads it once);
* ``GET /api/gallery?offset=&limit=&category=`` — one page of gallery ids with image URLs;
* ``GET /api/validation-queries?offset=&limit=&category=`` — one page of validation triplets (reference,
  caption, target) of the feature cache, as ready-made queries whose target the page can mark;
* ``GET /images/{image_id}`` — the image file of a known id;
* ``POST /api/search`` — multipart form: ``reference_id`` or an uploaded ``reference_image``, plus
  ``text``, optional ``category`` and ``k``; returns the ranked ids, scores and image URLs;
* ``GET /`` — the search page (static HTML, JavaScript and CSS, no build step), ``GET /favicon.ico`` its icon.

Every client mistake is answered with a 4xx and ``{"detail": "<one line>", "field": "<name>"}``
(except a ``Host`` name outside ``allowed_hosts``: Starlette's plain 400 "Invalid host header");
the engine is shared by all requests. Each search request is checked and its upload decoded and
preprocessed on its own thread of the server's pool, so a bad request fails alone; the checked query
then joins a micro-batch (:mod:`cirlab.serve.batching`) whose texts, images, combiner pass and faiss
search are shared and which one of the waiting request threads answers, or, with batching off, is
answered on its own thread. Request bodies are checked as they arrive (:mod:`cirlab.serve.body_limit`);
who may ask is :mod:`cirlab.serve.access`'s.

Annotations here are evaluated eagerly (no ``from __future__ import annotations``): FastAPI reads the
route signatures, whose ``Query``/``Form`` bounds come from the limits in ``create_app``'s scope.
"""

import logging
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from cirlab import __version__
from cirlab.errors import CirlabError
from cirlab.search.errors import QueryError, UnknownItemError
from cirlab.search.query import PreparedQuery, SearchEngine, SearchHit
from cirlab.serve.access import TokenCheck, check_token
from cirlab.serve.batching import BatchSettings, MicroBatcher
from cirlab.serve.body_limit import BodyLimit
from cirlab.serve.images import ImageFiles
from cirlab.serve.queries import validation_queries
from cirlab.serve.validation import (
    RequestError,
    ServeLimits,
    check_category,
    check_form_type,
    check_image_id,
    check_k,
    check_text,
    decode_upload,
)

log = logging.getLogger("cirlab.serve")

#: The fields of ``POST /api/search``, as its 415 answer names them.
SEARCH_FIELDS = "text, reference_id or reference_image, category, k"
#: Content-Security-Policy of the page: its own scripts, styles and images (plus previews of uploads).
PAGE_POLICY = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'"


def static_dir() -> Path:
    """Folder of the page's HTML, JavaScript and CSS inside the installed package."""
    return Path(str(resources.files("cirlab.serve").joinpath("static")))


def create_app(engine: SearchEngine, data_root: str | Path | None = None, *, limits: ServeLimits | None = None,
               batching: BatchSettings | None = None, allowed_hosts: Sequence[str] | None = None,
               token: str | None = None) -> FastAPI:
    """The FastAPI application serving ``engine``; images come from the FashionIQ-layout ``data_root``.

    ``data_root`` defaults to the data set recorded in the index's manifest; with neither, the API
    works and ``/images`` answers 404. ``batching`` (default :class:`BatchSettings`: 2 ms, up to 32
    queries) says how concurrent searches are batched. ``allowed_hosts`` are the ``Host`` names
    answered (``None``: any; ``cirlab serve`` passes :func:`cirlab.serve.access.allowed_hosts` of its
    address), and with a ``token`` every request but the page, ``/health`` and the documentation must
    present it.
    """
    limits = limits or ServeLimits()
    batching = batching or BatchSettings()
    if token is not None:
        check_token(token)
    if data_root is None:
        data_root = engine.index.manifest.data_root
    known_ids = set(engine.index.ids) | set(engine.features.image_ids)
    images = ImageFiles(data_root, known_ids)
    categories = engine.index.categories()
    queries = validation_queries(engine.features, engine.index)
    every_query = [query for listed in queries.values() for query in listed]
    page = (static_dir() / "index.html").read_text(encoding="utf-8")
    batcher: MicroBatcher[PreparedQuery, list[SearchHit]] | None = None
    if batching.enabled:
        batcher = MicroBatcher(engine.search_batch, batching)

    app = FastAPI(title="cirlab search", version=__version__,
                  description="Composed image retrieval: a reference image plus a modification text → "
                              "the gallery images that match.")
    # The last added runs first: the Host name, then the token, then the body.
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes, read_timeout=limits.body_timeout)
    if token is not None:
        public = ["/", "/favicon.ico", "/health", app.docs_url, app.redoc_url, app.openapi_url,
                  app.swagger_ui_oauth2_redirect_url]
        app.add_middleware(TokenCheck, token=token, public_paths=[path for path in public if path])
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts), www_redirect=False)
    app.mount("/static", StaticFiles(directory=static_dir()), name="static")
    app.state.engine, app.state.limits, app.state.images, app.state.batcher = engine, limits, images, batcher
    answer = batcher if batcher is not None else engine.search_prepared

    def image_url(image_id: str) -> str:
        return f"/images/{quote(image_id, safe='')}"

    # ------------------------------------------------------------ error handlers
    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "field": exc.field}, status_code=exc.status)

    @app.exception_handler(QueryError)
    async def query_error(_: Request, exc: QueryError) -> JSONResponse:
        status = 404 if isinstance(exc, UnknownItemError) else 400
        return JSONResponse({"detail": exc.problem, "field": exc.field}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', 'invalid')}"
                    for e in exc.errors()]
        first = exc.errors()[0].get("loc", ("", "request")) if exc.errors() else ("", "request")
        return JSONResponse({"detail": "; ".join(problems), "field": str(first[-1])}, status_code=422)

    @app.exception_handler(CirlabError)
    async def cirlab_error(request: Request, exc: CirlabError) -> JSONResponse:
        # A damaged index or a refused score: the service's own fault, said in one line (no traceback).
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"detail": str(exc), "field": None}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__})", "field": None}, status_code=500)

    # ------------------------------------------------------------------ routes
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index_page() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY,
                                           "X-Content-Type-Options": "nosniff"})

    @app.get("/health", summary="Liveness and gallery size")
    def health() -> dict[str, Any]:
        return {"status": "ok", "gallery_size": len(engine.index), "version": __version__}

    @app.get("/api/info", summary="Categories, limits and what the index holds")
    def info() -> dict[str, Any]:
        manifest = engine.index.manifest
        return {"gallery_size": len(engine.index), "categories": categories, "split": manifest.split,
                "index_kind": manifest.kind, "dim": manifest.dim, "model": manifest.features.get("model"),
                "images_available": images.available, "validation_queries": len(every_query),
                "limits": limits.to_dict()}

    @app.get("/api/gallery", summary="One page of the gallery")
    def gallery(offset: Annotated[int, Query(ge=0, description="first item of the page")] = 0,
                limit: Annotated[int, Query(ge=1, le=limits.max_page_size, description="items per page")] = 24,
                category: Annotated[str | None, Query(description="only this category")] = None) -> dict[str, Any]:
        chosen = check_category(category, categories)
        positions = engine.index.category_positions(chosen)
        page_positions = positions[offset:offset + limit].tolist()
        items = []
        for position in page_positions:
            image_id, item_categories = engine.index.ids[position], engine.index.categories_of(position)
            items.append({"id": image_id, "category": chosen or item_categories[0], "categories": item_categories,
                          "image_url": image_url(image_id)})
        return {"total": len(positions), "offset": offset, "limit": limit, "category": chosen, "items": items}

    @app.get("/api/validation-queries", summary="One page of validation triplets as ready-made queries")
    def validation(offset: Annotated[int, Query(ge=0, description="first item of the page")] = 0,
                   limit: Annotated[int, Query(ge=1, le=limits.max_page_size, description="items per page")] = 24,
                   category: Annotated[str | None, Query(description="only this category")] = None) -> dict[str, Any]:
        chosen = check_category(category, categories)
        listed = queries[chosen] if chosen else every_query
        items = [{**query.to_dict(), "reference_url": image_url(query.reference_id),
                  "target_url": image_url(query.target_id)} for query in listed[offset:offset + limit]]
        return {"total": len(listed), "offset": offset, "limit": limit, "category": chosen, "items": items}

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return FileResponse(static_dir() / "favicon.svg", media_type="image/svg+xml",
                            headers={"Cache-Control": "public, max-age=86400"})

    @app.get("/images/{image_id}", summary="The image file of a gallery id", response_class=FileResponse)
    def image(image_id: str) -> FileResponse:
        check_image_id(image_id, "image_id")
        path = images.path(image_id)
        if path is None or not path.is_file():
            raise RequestError(404, "image_id", f"no image file for id {image_id!r}")
        return FileResponse(path, headers={"Cache-Control": "public, max-age=3600",
                                           "X-Content-Type-Options": "nosniff"})

    @app.post("/api/search", summary="Composed search: reference image + modification text")
    def search(
        request: Request,
        text: Annotated[str | None, Form(description=f"the modification, at most {limits.max_text_chars} "
                                                     f"characters")] = None,
        reference_id: Annotated[str | None, Form(description="a gallery image id")] = None,
        reference_image: Annotated[UploadFile | None, File(description=f"an uploaded image (JPEG, PNG, WebP, GIF, "
                                                                       f"BMP; at most {limits.max_upload_bytes} "
                                                                       f"bytes)")] = None,
        category: Annotated[str | None, Form(description="search only this category")] = None,
        k: Annotated[int | None, Form(description=f"number of results, 1 to {limits.max_k}")] = None,
    ) -> dict[str, Any]:
        check_form_type(request.headers.get("content-type"), SEARCH_FIELDS)
        query_text = check_text(text, limits)
        top_k = check_k(k, limits)
        chosen = check_category(category, categories)
        if (reference_id is None) == (reference_image is None):
            raise RequestError(400, "reference", "give exactly one of reference_id and reference_image")
        if reference_id is not None:
            reference: Any = check_image_id(reference_id, "reference_id")
        else:
            data = reference_image.file.read(limits.max_upload_bytes + 1)
            reference = decode_upload(data, limits)
        try:
            query = engine.prepare(reference, query_text, k=top_k, category=chosen)
        except UnknownItemError as exc:
            raise RequestError(404, "reference_id", exc.problem) from None
        hits = answer(query)
        return {
            "query": {"reference_id": reference_id, "uploaded": reference_image is not None, "text": query_text,
                      "category": chosen, "k": top_k},
            "results": [{"rank": rank, **hit.to_dict(), "image_url": image_url(hit.id)}
                        for rank, hit in enumerate(hits, start=1)],
        }

    return app
