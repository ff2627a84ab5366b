"""``brushwork serve``'s application: the studio page and the HTTP API under it.

FastAPI routes over :mod:`brushwork.web.studio` (the registries) and :mod:`brushwork.web.jobs` (the one
worker thread). Safe by default: uploads are bytes capped in size (413) and pixels (413, from the
header), formats are sniffed by Pillow, no client string becomes a path, results live in memory and
expire, the queue is bounded (429/503 with ``Retry-After``), every answer carries a Content-Security-Policy
and the cross-origin isolation headers the in-browser runtime needs for WASM threads, and every error
is ``{"error": "one line"}``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from brushwork import __version__
from brushwork.web.jobs import Busy, Job, JobStopped, JobStore, Worker, encode
from brushwork.web.studio import Form, Models, browser_model, build_request, describe_methods, runtime_dir
from brushwork.web.studio import style_catalogue as _catalogue
from brushwork.web.uploads import WebError, decode_image

STATIC = Path(__file__).resolve().parent / "static"
#: the page runs its own script and the WASM runtime (compiled, so 'wasm-unsafe-eval'), nothing from elsewhere
CSP = ("default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
       "img-src 'self' blob: data:; media-src 'self' blob: mediastream:; style-src 'self'; "
       "connect-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-embedder-policy", b"require-corp"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
FILE_FIELDS = {"photo": 1, "painting": 4, "mask": 1}


@dataclass
class ServerConfig:
    """The server's limits. Defaults suit one person on their own machine."""

    max_upload_bytes: int = 25 * 1024 * 1024  # a whole request body
    max_pixels: int = 50_000_000  # any uploaded image, checked from its header
    max_size: int = 2048  # output longest side
    max_steps: int = 500  # an optimization job
    max_job_seconds: float = 900.0
    abandon_after: float = 60.0  # a running job nobody has polled or streamed for this long stops
    max_waiting: int = 8  # one-pass requests waiting for the worker
    max_jobs: int = 2  # optimization jobs queued or running
    max_wait: float = 120.0  # a one-pass request waiting longer is answered 503
    result_ttl: float = 900.0  # finished jobs' results are forgotten after this
    preview_every: float = 0.5  # seconds between live preview images of a job
    cors_origins: list[str] = field(default_factory=list)
    device: str = "cpu"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


class _Limits:
    """ASGI middleware: the security headers on every answer, and the body-size cap (413) enforced on the
    declared length before reading and on the bytes as they arrive (chunked uploads)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in SECURITY_HEADERS if h[0] not in names)]
            await send(message)

        declared = dict(scope.get("headers") or []).get(b"content-length")
        limit = self.max_bytes
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _error(413, f"request body is {int(declared) / 1e6:.1f} MB, over this server's "
                              f"{limit / 1e6:.0f} MB limit")(scope, receive, send_with_headers)
            return
        seen = 0

        async def counted_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise WebError(413, f"request body is over this server's {limit / 1e6:.0f} MB limit")
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except WebError as exc:  # raised while a route read the body; nothing has been sent yet
            await _error(exc.status, str(exc))(scope, receive, send_with_headers)


def _marks(method: Any, req: Any) -> dict[str, Any]:
    """What a result carries: the watermark and a provenance record (no paths: uploads are hashed)."""
    from brushwork.provenance import build_provenance

    record = build_provenance(method.name, req.styles, model=req.model, model_files=method.model_files(req),
                              settings={"size": req.size, "strength": req.strength,
                                        "preserve_color": req.preserve_color, "web": True})
    return {"provenance": record, "watermark": True}


def create_app(config: ServerConfig | None = None) -> FastAPI:
    """The studio application (the worker thread starts with the app and stops with it)."""
    from contextlib import asynccontextmanager

    config = config or ServerConfig()
    worker = Worker(max_quick=config.max_waiting, max_jobs=config.max_jobs, max_wait=config.max_wait)
    jobs = JobStore(ttl=config.result_ttl)
    models = Models()
    catalogue = _catalogue()
    thumbs: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        worker.start()
        yield
        worker.stop()

    app = FastAPI(title="brushwork studio", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)
    app.state.config, app.state.worker, app.state.jobs = config, worker, jobs
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["*"])
    app.add_middleware(_Limits, max_bytes=config.max_upload_bytes)

    @app.exception_handler(WebError)
    async def _web_error(request: Request, exc: WebError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.headers)

    @app.exception_handler(Busy)
    async def _busy(request: Request, exc: Busy) -> JSONResponse:
        return _error(exc.status, str(exc), {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        text = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error(exc.status_code, "not found" if exc.status_code == 404 else text, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        return _error(400, f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(exc).__name__}: {exc}"[:300])

    async def read_form(request: Request) -> Form:
        """The multipart form: text fields and the decoded images (decoded off the event loop)."""
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise WebError(415, "send multipart/form-data with a 'photo' file")
        try:
            raw = await request.form(max_files=8, max_fields=64, max_part_size=64 * 1024)
        except WebError:
            raise
        except Exception as exc:
            raise WebError(400, f"unreadable multipart form: {exc}") from None
        fields: dict[str, list[str]] = {}
        files: dict[str, list[bytes]] = {}
        try:
            for key, value in raw.multi_items():
                if isinstance(value, UploadFile):
                    if key not in FILE_FIELDS:
                        raise WebError(400, f"unexpected file field '{key[:40]}' (files: photo, painting, mask)")
                    files.setdefault(key, []).append(await value.read())
                    if len(files[key]) > FILE_FIELDS[key]:
                        raise WebError(400, f"at most {FILE_FIELDS[key]} '{key}' file(s)")
                elif key in FILE_FIELDS:
                    raise WebError(400, f"'{key}' must be a file upload, not a text field")
                else:
                    fields.setdefault(key, []).append(value)
        finally:
            await raw.close()
        if "photo" not in files:
            raise WebError(400, "missing the 'photo' file (multipart field 'photo')")

        def decode() -> Form:
            mp = config.max_pixels
            return Form(fields, decode_image(files["photo"][0], "photo", mp),
                        [decode_image(d, f"painting {i + 1}", mp) for i, d in enumerate(files.get("painting", []))],
                        decode_image(files["mask"][0], "mask", mp) if "mask" in files else None)

        return await run_in_threadpool(decode)

    def prepare(form: Form) -> tuple[Any, Any]:
        method, req = build_request(form, catalogue, max_size=config.max_size, max_steps=config.max_steps)
        return method, replace(req, device=config.device)

    async def wait(request: Request, future: Any) -> Any:
        """The worker's answer; a client that disconnects while waiting frees its place in the queue."""
        wrapped = asyncio.wrap_future(future)
        while True:
            done, _ = await asyncio.wait({wrapped}, timeout=0.25)
            if done:
                return wrapped.result()
            if await request.is_disconnected():
                future.cancel()
                raise WebError(499, "client disconnected")

    def failure(exc: BaseException) -> WebError:
        from brushwork.errors import BrushworkError, ConfigError

        if isinstance(exc, (WebError, Busy)):
            return exc  # type: ignore[return-value]
        if isinstance(exc, ConfigError):
            return WebError(400, str(exc).replace("--", ""))
        if isinstance(exc, BrushworkError):
            return WebError(422, str(exc))
        if isinstance(exc, MemoryError):
            return WebError(413, "out of memory at this size: ask for a smaller size")
        return WebError(500, f"internal error: {type(exc).__name__}: {exc}"[:300])

    # -- the page -------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        return {"ok": True, "version": __version__, **worker.pending(), "jobs_kept": len(jobs)}

    # -- what there is -------------------------------------------------------------------------------------
    @app.get("/api/styles")
    async def styles() -> dict[str, Any]:
        """The built-in styles: name, title, artist, whether a fast net holds it, its thumbnail."""
        return {"styles": [{"name": s.name, "title": s.title, "artist": s.artist, "license": s.license,
                            "fast": s.model is not None, "model": s.model, "preset": s.preset,
                            "thumbnail": f"/api/styles/{s.name}/thumbnail.jpg"} for s in catalogue.values()]}

    def render_thumbnails() -> dict[str, bytes]:
        """Every built-in style on the bundled portrait, small: what the gallery shows (no painting images)."""
        from brushwork.demo import demo_photo
        from brushwork.image.io import load_image
        from brushwork.methods.registry import Request as MethodRequest
        from brushwork.methods.registry import default_method, methods

        photo = load_image(demo_photo())
        photo = photo.resize((round(photo.width * 200 / photo.height), 200))
        out: dict[str, bytes] = {}
        fast = next((m for m in methods() if m.needs_model), None)
        for s in catalogue.values():
            method = fast if s.model and fast else default_method()
            if method is None or (not s.model and not s.preset):
                continue
            req = MethodRequest(styles=[(s.name, 1.0)], options=method.Options(), size=200,
                                model=s.model if method.needs_model else None, device=config.device)
            try:
                img = method.run(models.get(method, req), photo, req).image
            except Exception:  # a style that cannot render shows its name instead
                continue
            out[s.name] = encode(img, "jpeg", 85)
        return out

    @app.get("/api/styles/{name}/thumbnail.jpg")
    async def thumbnail(name: str, request: Request) -> Response:
        if name not in catalogue:
            raise WebError(404, f"unknown style '{name[:60]}'")
        if "future" not in thumbs:
            thumbs["future"] = worker.submit(render_thumbnails)
        try:
            rendered = await asyncio.wrap_future(thumbs["future"])
        except Exception as exc:
            thumbs.pop("future", None)
            raise failure(exc) from None
        if name not in rendered:
            raise WebError(404, f"no thumbnail for '{name}'")
        return Response(rendered[name], media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/methods")
    async def list_methods() -> dict[str, Any]:
        """Every registered method and the controls a form can set for it."""
        from brushwork.methods.registry import default_method

        return {"methods": describe_methods(), "default": default_method().name,
                "limits": {"max_size": config.max_size, "max_steps": config.max_steps,
                           "max_upload_bytes": config.max_upload_bytes, "max_pixels": config.max_pixels,
                           "max_job_seconds": config.max_job_seconds}}

    @app.get("/api/browser")
    async def browser() -> dict[str, Any]:
        """What in-browser mode needs: the runtime's files (installed by ``npm ci``) and the ONNX model."""
        model = browser_model()
        runtime = runtime_dir(STATIC)
        reason = None
        if runtime is None:
            reason = "the in-browser runtime is not installed on this server: run `npm ci` in brushwork's folder"
        elif model is None:
            reason = "no shipped model has an INT8 ONNX export"
        return {"available": reason is None, "reason": reason,
                "runtime": "/static/vendor/ort/" if runtime else None,
                "model": "/api/browser/model.onnx" if model else None,
                **({k: model[k] for k in ("name", "style_names", "pad_multiple", "inputs", "output", "bytes")}
                   if model else {})}

    @app.get("/api/browser/model.onnx")
    async def browser_model_file() -> FileResponse:
        model = browser_model()
        if model is None:
            raise WebError(404, "no shipped model has an INT8 ONNX export")
        return FileResponse(model["path"], media_type="application/octet-stream",
                            headers={"Cache-Control": "max-age=3600"})

    # -- stylizing -----------------------------------------------------------------------------------------
    @app.post("/api/stylize")
    async def stylize(request: Request) -> Response:
        """One photo in one pass: ``image/png`` (or ``format=jpeg``); the image is not kept."""
        worker.check_room()
        form = await read_form(request)
        method, req = prepare(form)
        if not method.one_pass:
            raise WebError(400, f"method {method.name} is not one pass: POST /api/jobs runs it with live progress")
        fmt = form.one("format") or "png"
        if fmt not in ("png", "jpeg"):
            raise WebError(400, f"format must be png or jpeg, got '{fmt[:20]}'")

        def run() -> tuple[bytes, Any]:
            result = method.run(models.get(method, req), form.photo, req)
            return encode(result.image, fmt, **_marks(method, req)), result

        try:
            data, result = await wait(request, worker.submit(run))
        except Exception as exc:
            raise failure(exc) from None
        return Response(data, media_type=f"image/{fmt}", headers={
            "Cache-Control": "no-store", "X-Brushwork-Method": method.name,
            "X-Brushwork-Seconds": f"{result.seconds:.3f}", "X-Brushwork-Size": f"{result.size[0]}x{result.size[1]}",
            "X-Brushwork-Notes": json.dumps(result.notes)})

    @app.post("/api/jobs", status_code=202)
    async def create_job(request: Request) -> JSONResponse:
        """An optimization (or any method) as a job: poll ``GET /api/jobs/{id}`` or stream its events."""
        worker.check_room(job=True)
        form = await read_form(request)
        if form.one("method") is None:
            form.fields["method"] = ["optimize"]
        method, req = prepare(form)
        total = getattr(req.options, "steps", None) or 1
        job = jobs.new(total)
        photo = form.photo

        def progress(info: Any) -> None:
            now = time.monotonic()
            job.step, job.losses, job.size = info.step, dict(info.losses), tuple(info.sizes[info.scale])
            if job.preview is None or now - job.shown >= config.preview_every:
                job.preview, job.preview_seq, job.shown = encode(info.image(), "jpeg", 85), job.preview_seq + 1, now
            job.notify()
            if job.cancel.is_set():
                raise JobStopped(job.cancel_reason)
            if now - job.last_seen > config.abandon_after:
                raise JobStopped(f"no client looked at it for {config.abandon_after:.0f} s")
            if job.started is not None and now - job.started > config.max_job_seconds:
                job.result = encode(info.image(), **_marks(method, req))
                job.notes.append(f"stopped at step {info.step}: this server's {config.max_job_seconds:.0f} s cap")
                raise JobStopped("time cap")
            worker.serve_waiting()

        def run() -> None:
            job.state, job.started = "running", time.monotonic()
            job.notify()
            try:
                result = method.run(models.get(method, req), photo, replace(req, progress=progress))
                job.result, job.size = encode(result.image, **_marks(method, req)), tuple(result.size)
                job.notes.extend(result.notes)
                job.step, job.state = job.total, "done"
            except JobStopped as exc:
                job.state = "done" if job.result is not None else "cancelled"
                if job.state == "cancelled":
                    job.error = str(exc)
            except Exception as exc:
                job.state, job.error = "failed", str(failure(exc))
            finally:
                job.finished = time.monotonic()
                job.notify()

        job.future = worker.submit(run, job=True)
        return JSONResponse({"id": job.id, "status": f"/api/jobs/{job.id}", "events": f"/api/jobs/{job.id}/events",
                             "result": f"/api/jobs/{job.id}/result", "method": method.name, "total": total},
                            status_code=202)

    def find(job_id: str) -> Job:
        job = jobs.get(job_id)
        if job is None:
            raise WebError(404, f"no job '{job_id[:40]}' (unknown, or expired)")
        return job

    @app.get("/api/jobs/{job_id}")
    async def job_status(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        job.touch()
        return job.status()

    @app.get("/api/jobs/{job_id}/preview.jpg")
    async def job_preview(job_id: str) -> Response:
        job = find(job_id)
        job.touch()
        if job.preview is None:
            raise WebError(404, "no preview yet")
        return Response(job.preview, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/result")
    async def job_result(job_id: str) -> Response:
        job = find(job_id)
        job.touch()
        if job.result is None:
            if job.state in ("failed", "cancelled"):
                raise WebError(409, f"job {job.state}: {job.error or 'no result'}")
            raise WebError(409, f"job is {job.state} (step {job.step} of {job.total}): no result yet")
        return Response(job.result, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.delete("/api/jobs/{job_id}")
    async def cancel_job(job_id: str) -> dict[str, Any]:
        job = find(job_id)
        if not job.finished_state:
            job.stop("cancelled by the client")
            if job.future is not None and job.future.cancel():  # still queued: it never runs
                job.state, job.error, job.finished = "cancelled", "cancelled by the client", time.monotonic()
        return job.status()

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str, request: Request, detach: bool = False) -> StreamingResponse:
        """Server-sent events: ``progress`` (status + a preview image as a data URL when it changed) then
        ``end``. Closing the stream cancels the job unless ``?detach=true``."""
        job = find(job_id)

        async def events():
            sent_seq, last, beat = -1, None, time.monotonic()
            try:
                while True:
                    job.touch()
                    status = job.status()
                    key = (status["state"], status["step"], status["preview_seq"])
                    if key != last:
                        last = key
                        if job.preview is not None and job.preview_seq != sent_seq:
                            sent_seq = job.preview_seq
                            status["preview"] = "data:image/jpeg;base64," + base64.b64encode(job.preview).decode()
                        name = "end" if job.finished_state else "progress"
                        yield f"event: {name}\ndata: {json.dumps(status)}\n\n"
                        beat = time.monotonic()
                        if job.finished_state:
                            return
                    elif time.monotonic() - beat > 10:
                        yield ": still running\n\n"
                        beat = time.monotonic()
                    await asyncio.sleep(0.2)
            finally:
                if not job.finished_state and not detach:
                    job.stop("the client disconnected")

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return app
