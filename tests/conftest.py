"""Shared fixtures: the project's image data folder and small generated images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared image data (``$BRUSHWORK_DATA``, else ``<repo>/../shared/data``); skips if absent."""
    path = Path(os.environ.get("BRUSHWORK_DATA") or REPO_ROOT.parent / "shared" / "data").expanduser()
    if not path.is_dir():
        pytest.skip(f"image data folder not found: {path} (set BRUSHWORK_DATA)")
    return path


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
