"""Test pictures the suite makes itself, or that its dependencies ship: no downloads, no shared data.

- :func:`photo`: Grace Hopper's portrait from matplotlib's sample data (``brushwork.demo.demo_photo``),
  cropped to 4:3 like the classic content photos: a real photograph with faces, fabric, a flag and sky.
- :func:`scene`: a generated landscape (sky gradient, sun, hills, houses, grass noise).
- :func:`swirl_painting`, :func:`block_painting`, :func:`field_painting`: generated "paintings", seeded
  brush strokes and shapes with the high contrast and strong texture statistics style transfer feeds on:
  blue-and-yellow vortices (a Starry Night stand-in), flat shapes with black outlines (a Kandinsky stand-in),
  and a sky of swirls over a field of upright strokes with its sky/ground masks (a wheat-field stand-in).

Every function is deterministic (its ``seed``) and takes well under a second at these sizes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

Color = tuple[int, int, int]


def demo_photo_path() -> Path:
    from brushwork.demo import demo_photo

    return demo_photo()


def photo(size: tuple[int, int] = (512, 384)) -> Image.Image:
    """Matplotlib's Grace Hopper photo (512x600), its upper part cropped to 4:3, resized to ``size``."""
    with Image.open(demo_photo_path()) as im:
        im = im.convert("RGB").crop((0, 20, 512, 404))  # hat, face, flag and sky
    return im if im.size == size else im.resize(size, Image.Resampling.LANCZOS)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Value noise in 0..1: a coarse random grid upsampled bicubically."""
    h, w = shape
    coarse = (rng.random((max(2, h * cells // max(h, w)), max(2, w * cells // max(h, w)))) * 255).astype(np.uint8)
    up = Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 255.0


def _jitter(rng: np.random.Generator, color: Color, amount: int) -> Color:
    c = np.clip(np.asarray(color) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def scene(size: tuple[int, int] = (384, 384), seed: int = 0) -> Image.Image:
    """A generated landscape photo: sky gradient, sun, two hill ranges, houses with windows, noisy grass."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = yy / h
    sky = np.stack([90 + 120 * t, 140 + 80 * t, 230 - 30 * t], -1)
    img = sky.copy()
    sun = (xx - 0.75 * w) ** 2 + (yy - 0.2 * h) ** 2 < (0.08 * w) ** 2
    img[sun] = (255, 236, 150)
    for level, color, amp in ((0.5, (70, 110, 90), 0.12), (0.65, (60, 140, 60), 0.08)):
        ridge = level * h + amp * h * (_smooth_noise(rng, (1, w), 6)[0] - 0.5) * 2
        img[yy > ridge[None, :]] = color
    grass = yy > 0.65 * h + 0.08 * h
    img[grass] = img[grass] * (0.75 + 0.5 * rng.random((int(grass.sum()), 1)))
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for i in range(4):
        x0, bw = int(w * (0.08 + 0.22 * i)), int(w * 0.14)
        y1 = int(h * (0.82 + 0.04 * (i % 2)))
        y0 = y1 - int(h * (0.12 + 0.04 * (i % 3)))
        draw.rectangle((x0, y0, x0 + bw, y1), fill=_jitter(rng, (200, 170, 140), 40))
        draw.polygon([(x0 - 4, y0), (x0 + bw // 2, y0 - bw // 2), (x0 + bw + 4, y0)],
                     fill=_jitter(rng, (150, 50, 40), 30))
        for wx in (x0 + bw // 5, x0 + 3 * bw // 5):
            draw.rectangle((wx, y0 + 6, wx + bw // 5, y0 + 6 + bw // 5), fill=(40, 50, 70))
    return out.filter(ImageFilter.GaussianBlur(0.6))


def _strokes(img: Image.Image, rng: np.random.Generator, n: int, angle, color, width: tuple[int, int],
             length: tuple[int, int], segments: int = 4) -> None:
    """Draw ``n`` brush strokes that follow the direction field ``angle(x, y)``, coloured ``color(x, y)``."""
    draw = ImageDraw.Draw(img)
    w, h = img.size
    for _ in range(n):
        x, y = float(rng.uniform(0, w)), float(rng.uniform(0, h))
        step = float(rng.uniform(*length)) / segments
        pts = [(x, y)]
        for _ in range(segments):
            a = angle(x, y)
            x, y = x + step * math.cos(a), y + step * math.sin(a)
            pts.append((x, y))
        draw.line(pts, fill=color(pts[0][0], pts[0][1]), width=int(rng.integers(width[0], width[1] + 1)),
                  joint="curve")


def swirl_painting(size: tuple[int, int] = (512, 320), seed: int = 0) -> Image.Image:
    """Blue-and-yellow brush strokes wound round a few vortices and glowing 'stars', a dark ground strip."""
    rng = np.random.default_rng(seed)
    w, h = size
    centers = [(rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.6) * h, rng.choice([-1, 1])) for _ in range(4)]
    stars = [(rng.uniform(0.05, 0.95) * w, rng.uniform(0.05, 0.55) * h, rng.uniform(0.03, 0.06) * w)
             for _ in range(5)]
    ground = lambda x: 0.78 * h + 0.06 * h * math.sin(x / w * 5.0)  # noqa: E731

    def angle(x: float, y: float) -> float:
        vx, vy = 1.0, 0.15 * math.sin(x / w * 9)
        for cx, cy, spin in centers:
            dx, dy = x - cx, y - cy
            r2 = dx * dx + dy * dy + (0.05 * w) ** 2
            k = spin * (0.12 * w) ** 2 / r2 * 3
            vx, vy = vx - k * dy / math.sqrt(r2), vy + k * dx / math.sqrt(r2)
        if y > ground(x):
            return -math.pi / 2 + 0.3 * math.sin(x * 0.3)  # upright strokes on the ground
        return math.atan2(vy, vx)

    sky_colors = [(18, 36, 110), (35, 70, 160), (70, 120, 200), (130, 170, 220), (215, 225, 235)]
    star_colors = [(250, 220, 70), (240, 190, 40), (255, 245, 190)]

    def color(x: float, y: float) -> Color:
        if y > ground(x):
            return _jitter(rng, [(20, 30, 25), (45, 60, 40), (80, 70, 35)][int(rng.integers(3))], 15)
        for sx, sy, r in stars:
            d = math.hypot(x - sx, y - sy)
            if d < 2.2 * r and rng.random() < 1.1 - d / (2.2 * r):
                return _jitter(rng, star_colors[int(rng.integers(3))], 15)
        return _jitter(rng, sky_colors[int(rng.integers(len(sky_colors)))], 20)

    img = Image.new("RGB", size, (30, 55, 130))
    n = w * h // 30
    _strokes(img, rng, n // 2, angle, color, (4, 6), (14, 26))
    _strokes(img, rng, n // 2, angle, color, (2, 4), (8, 16))
    return img


def block_painting(size: tuple[int, int] = (480, 360), seed: int = 1) -> Image.Image:
    """Flat saturated shapes (circles, rectangles, wedges) with thick black lines and hatched patches on cream."""
    rng = np.random.default_rng(seed)
    w, h = size
    img = Image.new("RGB", size, (238, 228, 200))
    draw = ImageDraw.Draw(img)
    colors = [(200, 30, 30), (240, 200, 20), (20, 50, 160), (20, 20, 20), (230, 120, 20), (40, 140, 80)]
    s = min(w, h)
    for _ in range(18):
        c = colors[int(rng.integers(len(colors)))]
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.04, 0.16) * s
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=c, outline=(0, 0, 0), width=3)
        elif kind == 1:
            draw.rectangle((x - r, y - 0.6 * r, x + r, y + 0.6 * r), fill=c, outline=(0, 0, 0), width=3)
        else:
            draw.polygon([(x, y - r), (x + r, y + r), (x - r, y + 0.5 * r)], fill=c, outline=(0, 0, 0))
    for _ in range(6):  # hatched patches: parallel thin lines
        x0, y0, side = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.08, 0.2) * s
        for k in range(0, int(side), 5):
            draw.line((x0 + k, y0, x0 + k - side / 2, y0 + side), fill=(10, 10, 10), width=2)
    for _ in range(9):  # long black lines across the canvas
        draw.line((rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h)), fill=(0, 0, 0),
                  width=int(rng.integers(3, 8)))
    return img


def field_painting(size: tuple[int, int] = (480, 360), seed: int = 2) -> tuple[Image.Image, Image.Image, Image.Image]:
    """A sky of pale blue swirls over a field of upright yellow and green strokes, with its sky and ground
    masks (white = that region, the painting's size), for style masks."""
    rng = np.random.default_rng(seed)
    w, h = size
    horizon = [0.42 * h + 0.05 * h * math.sin(x / w * 7) for x in range(w)]
    is_sky = lambda x, y: y < horizon[min(w - 1, max(0, int(x)))]  # noqa: E731

    def angle(x: float, y: float) -> float:
        if is_sky(x, y):
            return math.atan2(math.cos(x / w * 12) * 0.8, math.sin(y / h * 20) + 0.4)
        return -math.pi / 2 + 0.35 * math.sin(x * 0.21)

    def color(x: float, y: float) -> Color:
        if is_sky(x, y):
            return _jitter(rng, [(150, 190, 230), (220, 235, 245), (90, 140, 210)][int(rng.integers(3))], 15)
        return _jitter(rng, [(220, 180, 40), (170, 130, 20), (60, 110, 40), (250, 220, 90)][int(rng.integers(4))],
                       20)

    img = Image.new("RGB", size, (150, 140, 90))
    n = w * h // 35
    _strokes(img, rng, n, angle, color, (3, 5), (10, 22))
    sky = Image.new("L", size, 0)
    ImageDraw.Draw(sky).polygon([(0, 0), (w, 0), *[(x, horizon[x]) for x in range(w - 1, -1, -1)]], fill=255)
    sky = sky.point(lambda v: 255 if v >= 128 else 0)
    ground = sky.point(lambda v: 255 - v)
    return img, sky.convert("RGB"), ground.convert("RGB")


def noise_texture(size: tuple[int, int] = (32, 32), seed: int = 3) -> Image.Image:
    """A colourful blotchy texture (for a small moving object in front of a photo)."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = np.stack([_smooth_noise(rng, (h, w), 6) for _ in range(3)], -1) * 255
    arr = arr * 0.7 + rng.random((h, w, 3)) * 255 * 0.3
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def image_folder(path: Path, n: int, seed: int, strokes: bool, size: tuple[int, int] = (88, 72)) -> Path:
    """``n`` small generated PNGs in ``path``: diagonal bands of a random palette (``strokes``, a "painting")
    or a noisy gradient (a "photo"); for trainers that read folders."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n):
        arr = np.zeros((h, w, 3), np.uint8)
        arr[:] = rng.integers(0, 255, 3)
        if strokes:
            yy, xx = np.mgrid[:h, :w]
            for c in rng.integers(0, 255, (4, 3)):
                arr[((xx + yy * rng.integers(1, 3)) // rng.integers(3, 9)) % 4 == rng.integers(0, 4)] = c
        else:
            arr = (arr * np.linspace(0.3, 1, w)[None, :, None] + rng.normal(0, 12, arr.shape)).clip(0, 255)
        Image.fromarray(arr.astype(np.uint8)).save(path / f"img{i}.png")
    return path
