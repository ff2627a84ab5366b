"""Frozen feature encoders (VGG19) and the sources of their weights."""

from brushwork.encoders.vgg import LAYER_NAMES, VGG19, VGGEncoder, load_encoder
from brushwork.encoders.weights import WEIGHT_SOURCES, WeightSpec, get_weight_spec

__all__ = ["LAYER_NAMES", "VGG19", "WEIGHT_SOURCES", "VGGEncoder", "WeightSpec", "get_weight_spec", "load_encoder"]
