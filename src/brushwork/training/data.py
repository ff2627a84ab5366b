"""Image folders as endless streams of random crops (for training decoders and nets).

Unreadable files are skipped and counted rather than stopping a long run; an empty
folder is an error before any training starts.
"""

from __future__ import annotations

import fnmatch
import random
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image

from brushwork.errors import ConfigError, ImageError
from brushwork.image.convert import to_tensor
from brushwork.image.io import load_image

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def list_images(folders: str | Path | Sequence[str | Path], exclude: Sequence[str] = (),
                what: str = "training folder") -> list[Path]:
    """Every image file under the folders (recursively), sorted, so a seed fixes the order.

    ``exclude`` holds glob patterns matched against file names (``*scream*``): held-out
    evaluation images stay out of training.
    """
    roots = [folders] if isinstance(folders, (str, Path)) else list(folders)
    files: list[Path] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise ConfigError(f"{what} not found: {root}")
        files += sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                        and not any(fnmatch.fnmatch(p.name.lower(), pat.lower()) for pat in exclude))
    if not files:
        raise ConfigError(f"no images (.jpg/.png/...) found in {', '.join(map(str, roots))}")
    return files


class RandomCrops:
    """Endless batches of random square crops: scale jitter, horizontal flips, RGB in 0..1."""

    def __init__(self, folders: str | Path | Sequence[str | Path], crop: int, batch: int, seed: int = 0,
                 scale: tuple[float, float] = (0.5, 1.0), exclude: Sequence[str] = ()) -> None:
        self.files = list_images(folders, exclude)
        self.crop, self.batch, self.scale = crop, batch, scale
        self.rng = random.Random(seed)
        self.skipped: list[str] = []
        self._cache: dict[Path, Image.Image] = {}

    def _load(self, path: Path) -> Image.Image | None:
        if path in self._cache:
            return self._cache[path]
        try:
            img = load_image(path)
        except ImageError:
            self.skipped.append(str(path))
            return None
        if len(self._cache) < 4096:  # the compact training sets fit in memory: decode once
            self._cache[path] = img
        return img

    def sample(self) -> torch.Tensor:
        """One crop ``(3, crop, crop)``: a random square of 50-100% of the short side, resized."""
        for _ in range(20):
            img = self._load(self.rng.choice(self.files))
            if img is not None:
                break
        else:
            raise ImageError(f"could not read images from the training folder ({len(self.skipped)} unreadable)")
        w, h = img.size
        side = max(8, int(min(w, h) * self.rng.uniform(*self.scale)))
        x, y = self.rng.randint(0, w - side), self.rng.randint(0, h - side)
        patch = img.crop((x, y, x + side, y + side)).resize((self.crop, self.crop), Image.Resampling.BILINEAR)
        if self.rng.random() < 0.5:
            patch = patch.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return to_tensor(patch)[0]

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            yield torch.stack([self.sample() for _ in range(self.batch)])

    def state(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state(self, state: dict) -> None:
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
