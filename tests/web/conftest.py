"""Fixtures for the web studio: the app for TestClient, a real server on a free loopback port, pictures."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from brushwork.web.app import ServerConfig, create_app

LOOPBACK = "127.0.0.1"


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg_bytes(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def small_photo() -> Image.Image:
    """The bundled portrait at 256x192 (no resize happens at size 256: pictures compare pixel for pixel)."""
    import media

    return media.photo((256, 192))


@pytest.fixture(scope="session")
def painting() -> Image.Image:
    import media

    return media.swirl_painting((128, 128))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """One app per module: models stay loaded between its tests, as in a real server."""
    config = ServerConfig(max_upload_bytes=4 * 1024 * 1024, max_pixels=20_000_000, max_steps=50,
                          abandon_after=30.0)
    with TestClient(create_app(config)) as c:
        yield c


class LiveServer:
    """uvicorn on 127.0.0.1 and a free port, in a thread of this process (stopped at the end)."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        import uvicorn

        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            self.port = s.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.app = create_app(config or ServerConfig())
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=LOOPBACK, port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def live_server() -> Iterator[LiveServer]:
    with LiveServer(ServerConfig(max_steps=50)) as server:
        yield server
