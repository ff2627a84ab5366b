"""The evaluator: the photo scores as 'no style, all content', the painting as 'all style'."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from brushwork.metrics import Evaluator


@pytest.fixture(scope="module")
def pair() -> tuple[Image.Image, Image.Image]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:64]
    photo = np.stack([xx * 4, yy * 5, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)
    stripes = ((np.sin(xx / 1.5) > 0)[..., None] * np.array([230, 40, 30]) + rng.integers(0, 40, (48, 64, 3)))
    return Image.fromarray(photo), Image.fromarray(stripes.clip(0, 255).astype(np.uint8))


def test_photo_and_painting_are_the_extremes(pair) -> None:
    photo, painting = pair
    ev = Evaluator(photo, painting, size=64)
    p = ev.score(photo)
    assert p.content == pytest.approx(0.0, abs=1e-6) and p.style_vs_photo == pytest.approx(1.0)
    s = ev.score(painting.resize(photo.size))
    assert s.style < 0.05 * p.style and s.content > 0.3
    mid = ev.score(Image.blend(photo, painting.resize(photo.size), 0.5))
    assert s.style < mid.style < p.style and p.content < mid.content < s.content
