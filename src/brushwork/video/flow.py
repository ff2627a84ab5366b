"""Optical flow between input frames (OpenCV DIS), warping, and where the flow can be trusted.

Flow is always computed on the *input* frames: the stylized ones flicker and have painted
texture the flow would follow instead of the scene. Convention: ``flow`` maps a pixel ``x`` of
the current frame to ``x + flow[x]`` in the previous one, so ``warp(prev, flow)`` brings the
previous frame onto the current one (backward warping, no holes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brushwork.errors import ConfigError

PRESETS = ("ultrafast", "fast", "medium")


def _cv2():
    try:
        import cv2
    except ImportError as exc:
        raise ConfigError("video needs OpenCV: pip install 'brushwork[video]'") from exc
    return cv2


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW uint8 luma, what DIS works on."""
    cv2 = _cv2()
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return xs, ys


def warp(image: np.ndarray, flow: np.ndarray, *, cubic: bool = False) -> np.ndarray:
    """``image`` sampled at ``x + flow[x]`` (edges replicated): the previous frame moved onto the
    current one. Works for uint8 or float images with any number of channels.

    Bilinear by default (measurements, flow fields); ``cubic`` for pictures that are warped again
    and again (the blend's previous output): bilinear sampling at sub-pixel offsets is a blur, and
    repeated every frame it washes the strokes out.
    """
    cv2 = _cv2()
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1],
                     interpolation=cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def consistency_mask(backward: np.ndarray, forward: np.ndarray, *, alpha1: float = 0.01, alpha2: float = 0.5,
                     motion_boundaries: bool = True) -> np.ndarray:
    """1 where the flow is reliable, 0 at occlusions, disocclusions, motion boundaries and pixels
    that come from outside the previous frame (float32 HxW).

    ``backward`` is current -> previous, ``forward`` previous -> current. Following one and then the
    other should return to the start; where it does not (by more than ``alpha1`` of the squared
    motion plus ``alpha2`` px²), the pixel was hidden in one of the frames (Sundaram et al. 2010,
    as used for video style transfer by Ruder et al. 2016). Motion boundaries, where the flow
    changes fast and is least accurate, are excluded too.
    """
    h, w = backward.shape[:2]
    xs, ys = _grid(h, w)
    tx, ty = xs + backward[..., 0], ys + backward[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    fw_at = warp(forward, backward)
    round_trip = backward + fw_at
    err = (round_trip**2).sum(-1)
    scale = (backward**2).sum(-1) + (fw_at**2).sum(-1)
    ok = inside & (err <= alpha1 * scale + alpha2)
    if motion_boundaries:
        gy_u, gx_u = np.gradient(backward[..., 0])
        gy_v, gx_v = np.gradient(backward[..., 1])
        grad = gx_u**2 + gy_u**2 + gx_v**2 + gy_v**2
        ok &= grad <= 0.01 * (backward**2).sum(-1) + 0.002
    return ok.astype(np.float32)


@dataclass
class FlowEstimator:
    """DIS optical flow (Kroeger et al. 2016): fast on CPU, dense, good on the large smooth
    motions of camera moves. One estimator is reused across frames.

    Frames larger than ``max_side`` are scaled down for the flow and the flow scaled back up:
    DIS at 1080p costs ~1 s a frame pair on two cores, at 640 px ~0.1 s, and the blend needs the
    motion of regions, not of single pixels. None computes it at full size.
    """

    preset: str = "medium"
    max_side: int | None = 640

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown flow preset '{self.preset}': choose from {', '.join(PRESETS)}")
        if self.max_side is not None and self.max_side < 16:
            raise ConfigError(f"flow size must be at least 16 px, got {self.max_side}")
        cv2 = _cv2()
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[self.preset]
        self._dis = cv2.DISOpticalFlow_create(code)

    def flow(self, frame: np.ndarray, other: np.ndarray) -> np.ndarray:
        """HxWx2 float32 flow with ``frame(x) ≈ other(x + flow(x))``; gray uint8 inputs."""
        return self._dis.calc(frame, other, None)

    def backward(self, prev_gray: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flow current -> previous and its reliability mask (forward-backward check), at the frames' size."""
        h, w = gray.shape[:2]
        scale = 1.0 if self.max_side is None else min(1.0, self.max_side / max(h, w))
        if scale < 1.0:
            cv2 = _cv2()
            sw, sh = max(8, round(w * scale)), max(8, round(h * scale))
            prev_gray = cv2.resize(prev_gray, (sw, sh), interpolation=cv2.INTER_AREA)
            gray = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA)
        back = self.flow(gray, prev_gray)
        mask = consistency_mask(back, self.flow(prev_gray, gray))
        if scale < 1.0:
            back = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR) * np.float32([w / sw, h / sh])
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)  # soft edges: no hard seams
        return back, mask
