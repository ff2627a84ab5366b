"""Perceptual losses as pure functions (:mod:`.functional`) plus thin modules (:mod:`.modules`)."""

from brushwork.losses.functional import (
    content_loss,
    gram_loss,
    gram_matrix,
    mean_std,
    mean_std_loss,
    tv_loss,
)
from brushwork.losses.modules import ContentLoss, GramStyleLoss, MeanStdStyleLoss, TVLoss

__all__ = [
    "ContentLoss",
    "GramStyleLoss",
    "MeanStdStyleLoss",
    "TVLoss",
    "content_loss",
    "gram_loss",
    "gram_matrix",
    "mean_std",
    "mean_std_loss",
    "tv_loss",
]
