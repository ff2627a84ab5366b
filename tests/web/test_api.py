"""The studio's HTTP API through FastAPI's TestClient: every endpoint, every refusal in one JSON line."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import numpy as np
import pytest
from conftest import jpeg_bytes, png_bytes
from fastapi.testclient import TestClient
from PIL import Image

from brushwork.methods.registry import method_names
from brushwork.web.app import ServerConfig, create_app
from brushwork.web.jobs import Busy, JobStore, Worker


def _post(client: TestClient, photo: bytes | None, url: str = "/api/stylize", files: dict | None = None,
          **data: object) -> object:
    parts = dict(files or {})
    if photo is not None:
        parts["photo"] = ("photo.png", photo, "application/octet-stream")
    return client.post(url, files=parts or None,
                       data={k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in data.items()})


def _image(resp) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(resp.content)).convert("RGB")).astype(int)


def _one_line_error(resp, status: int) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and "\n" not in body["error"] and body["error"], body
    return body["error"]


def _bomb_png(w: int = 30000, h: int = 30000) -> bytes:
    """A valid PNG header claiming w x h pixels with almost no data: decoding it would need 2.7 GB."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


# -- what there is ---------------------------------------------------------------------------------------------
def test_styles_and_their_thumbnails(client):
    styles = client.get("/api/styles").json()["styles"]
    names = [s["name"] for s in styles]
    assert {"starry_night", "udnie", "woman_with_hat"} <= set(names)
    fast = next(s for s in styles if s["name"] == "starry_night")
    assert fast["fast"] and fast["model"] == "cin" and fast["preset"] and fast["title"]
    r = client.get(fast["thumbnail"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).height == 200  # the bundled portrait, stylized: no painting image
    _one_line_error(client.get("/api/styles/../../etc/passwd/thumbnail.jpg"), 404)
    _one_line_error(client.get("/api/styles/nope/thumbnail.jpg"), 404)


def test_methods_come_from_the_registry(client):
    body = client.get("/api/methods").json()
    assert [m["name"] for m in body["methods"]] == method_names()
    assert body["default"] in method_names()
    by_name = {m["name"]: m for m in body["methods"]}
    optimize = {o["name"]: o for o in by_name["optimize"]["options"]}
    assert optimize["steps"]["kind"] == "int" and optimize["optimizer"]["choices"] == ["lbfgs", "adam"]
    assert by_name["optimize"]["one_pass"] is False and by_name["feedforward"]["needs_model"] is True
    every = {o["name"] for m in body["methods"] for o in m["options"]}
    assert not every & {"plot", "snapshot_every", "decoder", "weights", "style_mask_for"}  # files and paths: never
    assert body["limits"]["max_steps"] == 50


def test_health_and_browser_info(client):
    assert client.get("/api/health").json()["ok"] is True
    info = client.get("/api/browser").json()
    assert info["style_names"][0] == "starry_night" and info["inputs"] == ["image", "style_weights"]
    model = client.get(info["model"])
    assert model.status_code == 200 and len(model.content) == info["bytes"]


def test_page_headers_and_no_listing(client):
    page = client.get("/")
    assert page.status_code == 200 and 'data-testid="photo"' in page.text
    for r in (page, client.get("/api/styles"), client.get("/static/app.js"), client.get("/nope")):
        assert r.headers["cross-origin-opener-policy"] == "same-origin"
        assert r.headers["cross-origin-embedder-policy"] == "require-corp"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "access-control-allow-origin" not in r.headers  # no CORS unless configured
    _one_line_error(client.get("/static/"), 404)
    _one_line_error(client.get("/nope"), 404)


def test_cors_only_when_configured(small_photo):
    with TestClient(create_app(ServerConfig(cors_origins=["http://127.0.0.1:9999"]))) as c:
        r = c.get("/api/health", headers={"Origin": "http://127.0.0.1:9999"})
        assert r.headers["access-control-allow-origin"] == "http://127.0.0.1:9999"


# -- stylizing ---------------------------------------------------------------------------------------------------
def test_stylize_builtin_style(client, small_photo):
    r = _post(client, png_bytes(small_photo), style="udnie", size=256)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-brushwork-method"] == "feedforward"
    assert r.headers["x-brushwork-size"] == "256x192" and json.loads(r.headers["x-brushwork-notes"]) == []
    out = _image(r)
    assert out.shape == (192, 256, 3) and np.abs(out - np.asarray(small_photo)).mean() > 10
    jpeg = _post(client, png_bytes(small_photo), style="udnie", size=128, format="jpeg")
    assert jpeg.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(jpeg.content)).size == (128, 96)


def test_strength_blend_colours_and_mask(client, small_photo):
    photo = png_bytes(small_photo)
    zero = _image(_post(client, photo, style="udnie", strength=0, size=256))
    diff = np.abs(zero.astype(float) - np.asarray(small_photo))
    assert diff.mean() < 1 and diff.max() <= 12  # strength 0 = the photo, plus the invisible watermark
    a = _image(_post(client, photo, style="starry_night", size=256))
    b = _image(_post(client, photo, style="the_scream", size=256))
    mix = _image(_post(client, photo, style=["starry_night:0.5", "the_scream:0.5"], size=256))
    assert np.abs(mix - a).mean() > 2 and np.abs(mix - b).mean() > 2
    kept = _image(_post(client, photo, style="the_scream", preserve_color="luminance", size=256))
    assert np.abs(kept - b).mean() > 2
    half = Image.new("L", small_photo.size, 255)
    half.paste(0, (0, 0, 128, 192))  # black = photo kept on the left half
    masked = _image(_post(client, photo, files={"mask": ("m.png", png_bytes(half))}, style="the_scream", size=256))
    left, right = masked[:, :100], masked[:, 156:]
    assert np.abs(left - np.asarray(small_photo)[:, :100]).mean() < 2 < np.abs(right - b[:, 156:]).mean() + 3


def test_own_painting_and_registry_method(client, small_photo, painting):
    files = {"painting": ("p.png", png_bytes(painting))}
    r = _post(client, png_bytes(small_photo), files=files, size=128)
    assert r.status_code == 200, r.text
    assert r.headers["x-brushwork-method"] == "ghiasi"  # the registry's default for any painting
    g = _post(client, png_bytes(small_photo), style="woman_with_hat", method="ghiasi", size=128)
    assert g.status_code == 200 and g.headers["x-brushwork-method"] == "ghiasi", g.text


# -- jobs --------------------------------------------------------------------------------------------------------
def _wait(client, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.get(f"/api/jobs/{job_id}").json()
        if st["state"] in ("done", "failed", "cancelled"):
            return st
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {st}")


def test_optimization_job_with_progress_events(client, small_photo, painting):
    r = _post(client, png_bytes(small_photo), url="/api/jobs", files={"painting": ("p.png", png_bytes(painting))},
              steps=3, size=96)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["method"] == "optimize" and job["total"] == 3
    events = []
    with client.stream("GET", job["events"]) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                events.append([line[7:], None])
            elif line.startswith("data: "):
                events[-1][1] = json.loads(line[6:])
                if events[-1][0] == "end":
                    break
    assert events[-1][0] == "end" and events[-1][1]["state"] == "done", events[-1]
    assert any(e[1].get("preview", "").startswith("data:image/jpeg;base64,") for e in events)
    status = client.get(job["status"]).json()
    assert status["step"] == 3 and status["progress"] == 1.0 and set(status["losses"]) >= {"style", "content"}
    result = client.get(job["result"])
    assert result.headers["content-type"] == "image/png" and Image.open(io.BytesIO(result.content)).size == (96, 72)
    assert client.get(f"/api/jobs/{job['id']}/preview.jpg").headers["content-type"] == "image/jpeg"


def test_cancel_a_running_job(client, small_photo, painting):
    job = _post(client, png_bytes(small_photo), url="/api/jobs", files={"painting": ("p.png", png_bytes(painting))},
                steps=50, size=96).json()
    deadline = time.monotonic() + 60
    while client.get(job["status"]).json()["step"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.delete(job["status"]).status_code == 200
    st = _wait(client, job["id"])
    assert st["state"] == "cancelled" and st["step"] < 50
    assert "cancelled" in _one_line_error(client.get(job["result"]), 409)


def test_abandoned_job_stops_and_results_expire(small_photo, painting):
    config = ServerConfig(abandon_after=0.0, max_steps=20)
    with TestClient(create_app(config)) as c:
        job = _post(c, png_bytes(small_photo), url="/api/jobs", files={"painting": ("p.png", png_bytes(painting))},
                    steps=20, size=96).json()
        deadline = time.monotonic() + 60
        while c.app.state.jobs.get(job["id"]).state in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)  # (not polling the job: polling is looking at it)
        st = c.get(job["status"]).json()
        assert st["state"] == "cancelled" and "no client looked" in st["error"]
    store = JobStore(ttl=0.0)
    j = store.new(1)
    j.state, j.finished = "done", time.monotonic() - 1
    assert store.get(j.id) is None  # expired


# -- a bounded queue ---------------------------------------------------------------------------------------------
def test_full_queue_answers_429_with_retry_after(small_photo):
    with TestClient(create_app(ServerConfig(max_waiting=0, max_jobs=0))) as c:
        r = _post(c, png_bytes(small_photo), style="udnie")
        _one_line_error(r, 429)
        assert int(r.headers["retry-after"]) >= 1
        r = _post(c, png_bytes(small_photo), url="/api/jobs", style="udnie")
        _one_line_error(r, 429)
        assert int(r.headers["retry-after"]) >= 1


def test_worker_queue_bounds_and_stop():
    w = Worker(max_quick=1, max_jobs=1, max_wait=0.0)
    first = w.submit(lambda: 1)  # not started: it waits
    with pytest.raises(Busy) as full:
        w.submit(lambda: 2)
    assert full.value.status == 429 and full.value.retry_after >= 1
    w.start()
    with pytest.raises(Busy) as late:  # waited longer than max_wait: 503, not run
        first.result(timeout=10)
    assert late.value.status == 503
    w.stop()
    with pytest.raises(Busy) as stopping:
        w.submit(lambda: 3)
    assert stopping.value.status == 503


# -- bad input ---------------------------------------------------------------------------------------------------
def test_bad_input_each_one_json_line(client, small_photo):
    photo = png_bytes(small_photo)
    jpg = jpeg_bytes(small_photo)
    cases = [
        (_post(client, None, files={"painting": ("a.png", photo)}, style="udnie"), 400, "'photo'"),  # no photo
        (_post(client, photo), 400, "style"),  # missing style
        (client.post("/api/stylize", data={"style": "udnie"}), 415, "multipart"),  # no form at all
        (_post(client, b"just some text, not a picture\n" * 20, style="udnie"), 415, "not an image"),
        (_post(client, jpg[: len(jpg) // 3], style="udnie"), 422, "truncated"),
        (_post(client, b"", style="udnie"), 400, "empty"),
        (_post(client, photo, style="starry_nite"), 400, "did you mean 'starry_night'"),
        (_post(client, photo, style="/etc/passwd"), 400, "unknown style"),
        (_post(client, photo, style="udnie", strength=1.5), 400, "between 0 and 1"),
        (_post(client, photo, style="udnie", strength=-0.1), 400, "between 0 and 1"),
        (_post(client, photo, style="udnie", strength="lots"), 400, "must be a number"),
        (_post(client, photo, style="udnie", size=10), 400, "size"),
        (_post(client, photo, style="udnie", method="nope"), 400, "unknown method"),
        (_post(client, photo, style="udnie", steps=5), 400, "unknown field 'steps'"),
        (_post(client, photo, style="udnie", method="optimize"), 400, "POST /api/jobs"),
        (_post(client, photo, url="/api/jobs", style="udnie", steps=51), 400, "at most 50"),
        (_post(client, photo, style="udnie", optimizer="sgd", method="optimize"), 400, "lbfgs"),
        (_post(client, photo, style="udnie", preserve_color="match"), 400, "luminance"),
        (_post(client, photo, style="udnie", engine="cuda-magic"), 400, "engine"),
        (_post(client, photo, files={"painting": ("a.png", b"not an image at all")}), 415, "painting 1"),
        (_post(client, photo, files={"secret": ("x", b"x")}, style="udnie"), 400, "unexpected file field"),
        (_post(client, photo, style="udnie", photo_path="/etc/passwd"), 400, "unknown field"),
    ]
    for resp, status, words in cases:
        assert words in _one_line_error(resp, status), (status, words, resp.text)
    for method, path in [("GET", "/api/jobs/nope"), ("GET", "/api/jobs/nope/result"), ("DELETE", "/api/jobs/nope"),
                         ("GET", "/api/jobs/nope/events"), ("GET", "/api/jobs/nope/preview.jpg")]:
        assert "no job" in _one_line_error(client.request(method, path), 404)
    assert client.get("/api/health").json()["ok"]  # unharmed


def test_decompression_bomb_refused_from_its_header(client):
    t0 = time.perf_counter()
    r = _post(client, _bomb_png(), style="udnie")
    assert "30000x30000 = 900 megapixels, over this server's 20 MP limit" in _one_line_error(r, 413)
    r = _post(client, _bomb_png(6000, 6000), style="udnie")  # under Pillow's own cap, over this server's
    assert "6000x6000 = 36 megapixels, over this server's 20 MP limit" in _one_line_error(r, 413)
    assert time.perf_counter() - t0 < 1.0


def test_huge_body_refused(client, small_photo):
    big = b"\0" * (5 * 1024 * 1024)  # over this app's 4 MB
    r = client.post("/api/stylize", files={"photo": ("p.png", big)}, data={"style": "udnie"})
    assert "limit" in _one_line_error(r, 413)

    def chunks():  # no Content-Length: counted as it arrives
        boundary = b"--xx\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"p\"\r\n\r\n"
        yield boundary
        for _ in range(6):
            yield b"\0" * (1024 * 1024)
        yield b"\r\n--xx--\r\n"

    r = client.post("/api/stylize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xx"})
    assert "limit" in _one_line_error(r, 413)
    assert client.get("/api/health").json()["ok"]


def test_closing_the_event_stream_cancels_the_job(live_server, small_photo, painting):
    """A client that goes away frees the worker: its job stops at the next step (a real server: disconnects)."""
    import httpx

    files = {"photo": ("p.png", png_bytes(small_photo)), "painting": ("q.png", png_bytes(painting))}
    job = httpx.post(f"{live_server.url}/api/jobs", files=files, data={"steps": "50", "size": "96"}, timeout=30).json()
    with httpx.stream("GET", live_server.url + job["events"], timeout=60) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: ") and json.loads(line[6:])["step"] >= 1:
                break  # watched one step, then gone
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = httpx.get(live_server.url + job["status"]).json()
        if st["state"] != "running":
            break
        time.sleep(0.1)
    assert st["state"] == "cancelled" and st["error"] == "the client disconnected" and st["step"] < 50, st


def test_results_carry_the_watermark_and_provenance(client, small_photo, painting):
    from brushwork.provenance import detect_watermark, read_provenance

    files = {"painting": ("p.png", png_bytes(painting))}
    for fmt in ("png", "jpeg"):
        r = _post(client, png_bytes(small_photo), files=files, size=256, format=fmt)
        assert r.status_code == 200, r.text
        with Image.open(io.BytesIO(r.content)) as img:
            record = read_provenance(img)
            assert detect_watermark(img).detected
        assert record["method"] == "ghiasi" and "sha256" in record["styles"][0]  # the upload by hash, no name
