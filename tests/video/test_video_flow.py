"""Optical flow, warping, the forward-backward mask and the blend, on a real photo moved by known amounts."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

cv2 = pytest.importorskip("cv2")

from brushwork.video import (  # noqa: E402
    FlowEstimator,
    blend,
    consistency_mask,
    restore_detail,
    to_gray,
    warp,
    warp_error,
)


@pytest.fixture(scope="module")
def photo(media_files) -> np.ndarray:
    """Matplotlib's Grace Hopper photo (tests/media.py) at 160x120."""
    return np.asarray(Image.open(media_files.photo).convert("RGB").resize((160, 120), Image.Resampling.LANCZOS))


def shifted(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The picture moved by (dx, dy) px: out(x) = img(x - d)."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(img, m, (img.shape[1], img.shape[0]), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def test_flow_of_a_known_subpixel_shift_and_its_warp(photo):
    cur = shifted(photo, 2.5, -1.5)
    flow, mask = FlowEstimator().backward(to_gray(photo), to_gray(cur))
    reliable = mask > 0
    # current -> previous: each pixel came from 2.5 px left and 1.5 px below
    assert np.median(flow[..., 0][reliable]) == pytest.approx(-2.5, abs=0.1)
    assert np.median(flow[..., 1][reliable]) == pytest.approx(1.5, abs=0.1)
    assert mask.mean() > 0.85
    inner = (slice(8, -8), slice(8, -8))
    warped = warp(photo, flow)
    err = np.abs(warped.astype(float) - cur)[inner][reliable[inner]].mean()
    unwarped = np.abs(photo.astype(float) - cur)[inner].mean()
    assert err < 1.5 and err < unwarped / 10
    assert warp_error(photo, cur, flow, mask) < unwarped / 5


def test_flow_computed_on_smaller_frames_is_scaled_back(photo):
    cur = shifted(photo, 4, 2)
    flow, mask = FlowEstimator(max_side=80).backward(to_gray(photo), to_gray(cur))  # computed at 80x60
    assert flow.shape == (120, 160, 2) and mask.shape == (120, 160)
    reliable = mask > 0.5
    assert np.median(flow[..., 0][reliable]) == pytest.approx(-4, abs=0.25)
    assert np.median(flow[..., 1][reliable]) == pytest.approx(-2, abs=0.25)
    assert warp_error(photo, cur, flow, mask) < np.abs(photo.astype(float) - cur).mean() / 3


def test_mask_drops_pixels_from_outside_the_previous_frame(photo):
    cur = shifted(photo, 3, 0)  # the left 3 columns are new
    _, mask = FlowEstimator().backward(to_gray(photo), to_gray(cur))
    assert mask[:, :2].mean() < 0.05
    assert mask[10:-10, 10:-10].mean() > 0.9


def test_mask_drops_disoccluded_pixels_behind_a_moving_object(photo, media_files):
    bg = np.asarray(Image.fromarray(photo).resize((128, 96)))
    fg = np.asarray(Image.open(media_files.texture).convert("RGB").resize((32, 32)))

    def frame(x: int) -> np.ndarray:
        f = bg.copy()
        f[32:64, x:x + 32] = fg
        return f

    prev, cur = frame(40), frame(46)  # the textured square moves 6 px right over a still background
    flow, mask = FlowEstimator().backward(to_gray(prev), to_gray(cur))
    assert np.median(flow[36:60, 52:70, 0]) == pytest.approx(-6, abs=0.3)
    assert mask[34:62, 41:46].mean() < 0.2  # revealed background: it was behind the square
    assert mask[36:60, 54:68].mean() > 0.7  # the square itself is tracked


def test_consistency_check_rejects_flows_that_do_not_round_trip():
    h, w = 24, 32
    back = np.zeros((h, w, 2), np.float32)
    back[..., 0] = -2.0
    assert consistency_mask(back, -back)[:, 4:].min() == 1.0  # out and back again: reliable
    assert consistency_mask(back, np.zeros_like(back)).max() == 0.0  # forward says nothing moved: occluded


def test_blend_follows_the_formula():
    rng = np.random.default_rng(0)
    styled = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    prev = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
    mask = np.zeros((8, 10), np.float32)
    mask[:, 5:] = 1
    out = blend(styled, prev, mask, 0.75)
    assert np.array_equal(out[:, :5], styled[:, :5])  # unreliable: the fresh frame alone
    expected = 0.75 * prev[:, 5:].astype(float) + 0.25 * styled[:, 5:]
    assert np.abs(out[:, 5:] - expected).max() <= 0.5 + 1e-6


def test_restore_detail_brings_back_the_contrast_a_blend_averages_away():
    def local_contrast(img: np.ndarray) -> float:
        f = img.astype(np.float32)
        return float(np.abs(f - cv2.GaussianBlur(f, (0, 0), 2.0)).mean())

    def strokes(seed: int) -> np.ndarray:  # painterly texture: blurred noise around mid-grey
        noise = np.random.default_rng(seed).normal(0, 60, (96, 128, 3)).astype(np.float32)
        return np.clip(128 + cv2.GaussianBlur(noise, (0, 0), 1.0) * 2, 0, 255).astype(np.uint8)

    a, b = strokes(0), strokes(1)  # the same kind of texture, not lined up
    mixed = blend(a, b, np.ones(a.shape[:2], np.float32), 0.5)
    assert local_contrast(mixed) < 0.8 * local_contrast(a)
    restored = restore_detail(mixed, a)
    assert local_contrast(restored) == pytest.approx(local_contrast(a), rel=0.15)
    assert np.abs(restored.astype(float) - mixed).mean() < 15  # the blend's picture, only crisper
    assert np.abs(restore_detail(a, a).astype(float) - a).max() <= 1  # nothing blended: nothing changes
