"""Shared fixtures: test pictures the suite makes itself, the optional shared image data, small arrays.

The suite runs whole on a fresh clone: photos and paintings come from :mod:`media` (matplotlib's sample
photo and generated paintings). The project's image data folder (``../shared/data``) is optional; the few
quality checks that prefer real paintings use it when it is there (``shared_data``) and fall back to
:mod:`media` otherwise. ``BRUSHWORK_TEST_DATA=none`` runs the suite as if it were absent
(``BRUSHWORK_TEST_DATA=/some/folder`` points it elsewhere; ``BRUSHWORK_DATA`` is read too).
A test that skips fails unless it needs a GPU: see :mod:`skip_guard`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]

pytest_plugins = ["skip_guard", "pytester"]

try:  # property-based tests: reproducible in CI (derandomized, no example database written into the tree)
    from hypothesis import HealthCheck, settings

    settings.register_profile("brushwork", derandomize=True, database=None, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("explore", database=None, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])  # fresh examples every run
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "brushwork"))
except ImportError:  # the dev extra is not installed: tests/unit/test_bad_input.py says so
    pass


def shared_data_dir() -> Path | None:
    """The project's image data folder, or None when it is absent or turned off (``BRUSHWORK_TEST_DATA=none``)."""
    setting = os.environ.get("BRUSHWORK_TEST_DATA") or os.environ.get("BRUSHWORK_DATA")
    if setting is not None and setting.strip().lower() in ("none", "0", "off", "no"):
        return None
    path = Path(setting).expanduser() if setting else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "shared_data: reads the shared image data when present (with a fallback)")


def pytest_report_header(config) -> str:
    data = shared_data_dir()
    return f"brushwork test data: {data or 'none (generated pictures and fallbacks only)'}"


def pytest_collection_modifyitems(config, items) -> None:
    """Tests that read the shared data (with a fallback) are marked ``shared_data``: `.ci/run` runs them a
    second time with ``BRUSHWORK_TEST_DATA=none``, so their fallbacks are tested where the data is present."""
    for item in items:
        if {"shared_data", "data_dir"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("shared_data")


@pytest.fixture(scope="session")
def shared_data() -> Path | None:
    """The shared image data folder, or None: a test using it must fall back to :mod:`media` pictures."""
    return shared_data_dir()


@pytest.fixture(scope="session")
def data_dir(shared_data: Path | None) -> Path:
    """The shared image data folder. Do not use it without a fallback: the suite must run on a fresh clone
    (this skip is turned into a failure by skip_guard); take ``shared_data`` and fall back to ``media``."""
    if shared_data is None:
        pytest.skip("this test needs the shared image data folder (../shared/data) and has no fallback")
    return shared_data


@dataclass(frozen=True)
class Media:
    """Paths of the generated test pictures (see :mod:`media`), written once per session."""

    folder: Path
    photo: Path  #: Grace Hopper (matplotlib's sample photo), 512x384 JPEG
    scene: Path  #: a generated landscape, 384x384 JPEG
    portrait: Path  #: Grace Hopper's whole photo, 512x600 JPEG (matplotlib's own file)
    painting: Path  #: blue-and-yellow swirling strokes, 512x320 JPEG (Starry Night stand-in)
    painting2: Path  #: flat shapes and black lines, 480x360 JPEG (Kandinsky stand-in)
    square_painting: Path  #: swirling strokes, 320x320 JPEG
    field: Path  #: swirls over upright strokes, 480x360 JPEG, with its masks:
    field_sky: Path  #: white where the field painting is sky (PNG)
    field_ground: Path  #: white where it is not (PNG)
    texture: Path  #: a 64x64 colourful blotchy texture (PNG)
    photos: Path  #: a folder of three photos (JPEG)


def write_media(folder: Path) -> Media:
    import media

    folder.mkdir(parents=True, exist_ok=True)

    def jpg(img: Image.Image, name: str) -> Path:
        img.save(folder / name, quality=92)
        return folder / name

    field, sky, ground = media.field_painting()
    sky.save(folder / "field_sky.png")
    ground.save(folder / "field_ground.png")
    media.noise_texture((64, 64)).save(folder / "texture.png")
    photos = folder / "photos"
    photos.mkdir(exist_ok=True)
    m = Media(
        folder=folder,
        photo=jpg(media.photo(), "photo.jpg"),
        scene=jpg(media.scene(), "scene.jpg"),
        portrait=media.demo_photo_path(),
        painting=jpg(media.swirl_painting(), "swirls.jpg"),
        painting2=jpg(media.block_painting(), "blocks.jpg"),
        square_painting=jpg(media.swirl_painting((320, 320), seed=5), "swirls_square.jpg"),
        field=jpg(field, "field.jpg"),
        field_sky=folder / "field_sky.png",
        field_ground=folder / "field_ground.png",
        texture=folder / "texture.png",
        photos=photos,
    )
    for i, img in enumerate((media.photo((256, 192)), media.scene((256, 256), seed=1), media.scene((320, 240), 2))):
        img.save(photos / f"photo_{i}.jpg", quality=90)
    return m


@pytest.fixture(scope="session")
def media_files(tmp_path_factory) -> Media:
    """The generated test pictures as files (shared by the session: do not modify them)."""
    return write_media(tmp_path_factory.mktemp("media"))


def make_rgb_array(width: int = 24, height: int = 16, seed: int = 0) -> np.ndarray:
    """A deterministic HxWx3 uint8 image: smooth gradients plus a little noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    arr = np.stack(
        [xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), (xx + yy) * 255 // (width + height)],
        axis=-1,
    ).astype(np.int32)
    arr += rng.integers(-8, 9, size=arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


@pytest.fixture
def rgb_array() -> np.ndarray:
    """A small 16x24x3 uint8 image array."""
    return make_rgb_array()


@pytest.fixture
def rgb_image_file(tmp_path: Path, rgb_array: np.ndarray) -> Path:
    """A small 24x16 RGB PNG written into the test's tmp_path."""
    path = tmp_path / "small_rgb.png"
    Image.fromarray(rgb_array).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_cin(tmp_path_factory) -> Path:
    """An untrained two-style (waves, stars) feed-forward net: exercises --model wiring without training."""
    import torch

    from brushwork.methods.feedforward import TransformerConfig, TransformerNet

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cin") / "two"
    cfg = TransformerConfig(widths=(4, 8, 8), n_residual=1, n_styles=2, style_names=("waves", "stars"))
    TransformerNet(cfg).save_pretrained(folder)
    return folder


#: Test folders whose modules run real-weight passes: see _torch_threads.
_THREAD_LIMITED = {"cli", "integration", "training", "video", "batch", "export"}


@pytest.fixture(scope="module", autouse=True)
def _torch_threads(request):
    """Real-weight runs share a 2-core machine with other jobs: torch's default of one thread per core
    oversubscribes it (spinning OpenMP workers made these tests ~4x slower under load), so modules in
    the folders above run with ``$BRUSHWORK_TEST_THREADS`` torch threads (default 1), restored after."""
    if request.node.path.parent.name not in _THREAD_LIMITED:
        yield
        return
    from brushwork.runtime import inference_threads

    with inference_threads(int(os.environ.get("BRUSHWORK_TEST_THREADS", "1"))):
        yield


@pytest.fixture
def opened_images(monkeypatch) -> list:
    """Every image ``Image.Image.open`` returns during the test, in order (to check they get closed)."""
    opened: list = []
    real_open = Image.open

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(Image, "open", recording_open)
    return opened
