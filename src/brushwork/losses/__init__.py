"""Perceptual losses as pure functions (:mod:`.functional`) plus thin modules (:mod:`.modules`)."""

from brushwork.losses.functional import (
    KERNELS,
    FourierFeatures,
    content_loss,
    fourier_features,
    gram_loss,
    gram_matrix,
    mean_std,
    mean_std_loss,
    mmd2,
    mmd_loss,
    mmd_stats,
    tv_loss,
)
from brushwork.losses.modules import ContentLoss, GramStyleLoss, MeanStdStyleLoss, MMDStyleLoss, TVLoss

__all__ = [
    "KERNELS",
    "ContentLoss",
    "FourierFeatures",
    "GramStyleLoss",
    "MMDStyleLoss",
    "MeanStdStyleLoss",
    "TVLoss",
    "content_loss",
    "fourier_features",
    "gram_loss",
    "gram_matrix",
    "mean_std",
    "mean_std_loss",
    "mmd2",
    "mmd_loss",
    "mmd_stats",
    "tv_loss",
]
