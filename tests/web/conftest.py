"""Fixtures for the web studio: the app for TestClient, a real server on a free loopback port, pictures."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from brushwork.web.app import ServerConfig, create_app
from brushwork.web.local import LocalServer


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


@pytest.fixture(scope="module")
def live_server() -> Iterator[LocalServer]:
    """A real server on 127.0.0.1 (a free port), for the browser and the load test."""
    with LocalServer(ServerConfig(max_steps=50)) as server:
        yield server
