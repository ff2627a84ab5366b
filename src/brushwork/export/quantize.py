"""INT8 quantization of exported graphs with onnxruntime.

Static QDQ (weights int8 per channel, activations uint8, ranges calibrated on a few real
photos) is the one that speeds up convolutions on CPUs with VNNI; dynamic quantization
(ranges found at run time) is kept as the baseline the issue asks to compare against.
Calibration feeds are what the stylizers feed: padded photos in 0..1 plus, per graph kind,
one-hot style weights or a built-in painting's AdaIN statistics, cycled.

Weights use 7 bits (``reduce_range``, -64..64). On x86 CPUs without VNNI (AVX2, most users'
machines) onnxruntime multiplies uint8 activations by int8 weights with ``vpmaddubsw``, which adds
each pair of products in int16 and saturates when both are large (255 * 127 * 2 > 32767); with
7-bit weights no pair can overflow. Measured on the shipped CIN net (4 photos x 4 styles at 768x512,
against fp32): full-range weights gave 31.0 dB on VNNI kernels but 26.3 dB on AVX2 ones; 7-bit
weights give 30.9 dB on both, so every CPU gets the same picture.

A convolution with fewer than 4 output channels (a full-resolution net's last, RGB one) stays in
float: onnxruntime's quantized convolution unrolls its input (im2col) for so few outputs, which for
the CycleGAN generator's 7x7 x 32-channel last layer at 1024 px is a 1.6 GB buffer (peak 2.1 GiB,
first pass 3-9 s); in float it runs direct (peak 0.66 GiB, first pass 1.7 s). Sub-pixel nets end in
12 channels and are unaffected.

``float_last`` keeps a graph's last N convolutions in float as well. A CycleGAN generator's two
upsampling convolutions feed its RGB layer directly, and their 8-bit activations showed as a fine
grain over flat skies (28.7 dB from the float net on held-out photos); with its last three in float
the grain is gone (37.8 dB, whole commands) for ~35% more time on a pass still ~1.5x faster than torch's.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brushwork.errors import ConfigError
from brushwork.export.graph import hoist_quantize, pad_conv_outputs, space_to_depth
from brushwork.export.onnx import META_KEY, encoder_path, read_meta
from brushwork.image.io import ImageInput, fit_size, load_image, resize
from brushwork.inference.arrays import pad_to, to_array
from brushwork.inference.session import require_ort

MODES = ("static", "dynamic")


def _photos(images: Sequence[ImageInput], size: int, multiple: int, upscale: bool = False) -> list[np.ndarray]:
    out = []
    for img in images:
        pil = load_image(img, what="calibration photo")
        x, _, _ = pad_to(to_array(resize(pil, fit_size(pil.size, size, allow_upscale=upscale))), multiple)
        out.append(x)
    return out


def _adain_stats() -> list[tuple[np.ndarray, np.ndarray]]:
    """relu4_1 (mean, std) of the built-in paintings: realistic AdaIN inputs without image files."""
    from brushwork.methods.adain import ENCODER_LAYER
    from brushwork.styles import find_preset, preset_paths

    stats = []
    for name in sorted(preset_paths()):
        p = find_preset(name)
        if ENCODER_LAYER in p.means:
            stats.append((p.means[ENCODER_LAYER].float().numpy(), p.stds[ENCODER_LAYER].float().numpy()))
    return stats


def _ghiasi_embeddings(meta: dict[str, Any]) -> list[np.ndarray]:
    """Realistic embeddings for calibrating a ghiasi transformer: the built-in presets' statistics
    through the head graph exported beside it."""
    from brushwork.export.onnx import ghiasi_paths, session
    from brushwork.styles import find_preset, preset_paths

    head = session(ghiasi_paths(meta["_path"])[1])
    out = []
    for name in sorted(preset_paths()):
        preset = find_preset(name)
        stats = preset.ghiasi_stats(meta["style_size"])
        if stats is None and preset.ghiasi:  # statistics at another size still give realistic embeddings
            stats = next(iter(preset.ghiasi.values()))
        if stats is not None:
            (e,) = head.run(None, {"statistics": stats.float().numpy()})
            out.append(e)
    if not out:
        raise ConfigError("no style preset holds ghiasi statistics to calibrate with")
    return out


def calibration_feeds(meta: dict[str, Any], photos: Sequence[ImageInput], size: int) -> Iterator[dict[str, np.ndarray]]:
    """The input dicts static calibration runs the float graph on."""
    kind = meta.get("kind")
    if kind == "ghiasi-encoder":  # paintings, at the size the stylizer encodes them (longest side style_size)
        for x in _photos(photos, int(meta["style_size"]), 1, upscale=True):
            yield {"image": x}
        return
    xs = _photos(photos, size, int(meta.get("pad_multiple", 8)))
    if kind in ("adain-encoder", "cyclegan"):  # graphs of the image alone
        for x in xs:
            yield {"image": x}
        return
    if kind == "adain":
        stats = _adain_stats()
        for i, x in enumerate(xs):
            mean, std = stats[i % len(stats)]
            hw = (x.shape[-2] // 8, x.shape[-1] // 8)
            yield {"image": x, "style_std": np.ascontiguousarray(np.broadcast_to(std, (1, 512, *hw))),
                   "style_mean": np.ascontiguousarray(np.broadcast_to(mean, (1, 512, *hw))),
                   "strength": np.ones((1, 1, *hw), np.float32)}
        return
    if kind == "ghiasi":  # the built-in presets' embeddings through the exported head beside the graph
        embeddings = _ghiasi_embeddings(meta)
        for i, x in enumerate(xs):
            yield {"image": x, "embedding": embeddings[i % len(embeddings)]}
        return
    n = len(meta["style_names"])
    for i, x in enumerate(xs):
        w = np.zeros((1, n), np.float32)
        w[0, i % n] = 1.0
        yield {"image": x, "style_weights": w}


def _reader(feeds: Iterator[dict[str, np.ndarray]]) -> Any:
    """onnxruntime's calibration reader interface over a feed iterator."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(feeds, None)

    return Reader()


def _float_convs(model: Any, last: int = 0) -> list[str]:
    """The convolutions left in float: those with fewer than 4 output channels and the ``last`` ones in
    graph order (see the module's note)."""
    weights = {i.name: i.dims for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    tail = {n.name for n in convs[len(convs) - last:]} if last > 0 else set()
    return [n.name for n in convs if n.name in tail or (n.input[1] in weights and weights[n.input[1]][0] < 4)]


def quantize(src: str | Path, dst: str | Path, *, mode: str = "static", photos: Sequence[ImageInput] = (),
             size: int = 256, paintings: Sequence[ImageInput] = (), float_last: int = 0) -> Path:
    """Write an INT8 copy of an exported graph (for AdaIN, of its encoder graph too); returns ``dst``.

    A ghiasi export's head goes beside it unchanged; its VGG statistics encoder too, unless ``paintings``
    are given (static mode): then it is quantized as well, calibrated on them at the model's style size
    (a new painting's statistics ~3x faster; its embedding moves about as much as re-saving the painting
    as a JPEG moves it). ``float_last``: that many last convolutions of each graph stay in float."""
    require_ort()
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if mode not in MODES:
        raise ConfigError(f"unknown quantization '{mode}': choose from {', '.join(MODES)}")
    if mode == "static" and not photos:
        raise ConfigError("static quantization needs calibration photos (a few typical ones)")
    if float_last < 0:
        raise ConfigError(f"the number of last convolutions kept in float must be >= 0, got {float_last}")
    src, dst = Path(src), Path(dst)
    meta = {**read_meta(src), "_path": str(src)}
    if paintings and meta.get("kind") != "ghiasi":
        raise ConfigError(f"calibration paintings go with a ghiasi export, and {src} is a '{meta.get('kind')}' one")
    # (graph, output, metadata, calibration images): a ghiasi-encoder graph on its own takes the photos given
    pairs = [(src, dst, meta, photos)]
    if meta.get("kind") == "adain":
        pairs.append((encoder_path(src), encoder_path(dst), read_meta(encoder_path(src)), photos))
    if meta.get("kind") == "cyclegan":  # its other direction (beside it) is calibrated alike
        from brushwork.inference.cyclegan import reverse_path

        if reverse_path(src).is_file():
            pairs.append((reverse_path(src), reverse_path(dst), read_meta(reverse_path(src)), photos))
    if meta.get("kind") == "ghiasi":  # the head and statistics graphs go beside the INT8 transformer unchanged
        from brushwork.export.onnx import ghiasi_paths

        dst.parent.mkdir(parents=True, exist_ok=True)
        _, head, enc = ghiasi_paths(src)
        shutil.copyfile(head, ghiasi_paths(dst)[1])
        if mode == "static" and paintings:
            pairs.append((enc, ghiasi_paths(dst)[2], {**read_meta(enc), "style_size": meta["style_size"]}, paintings))
        else:
            shutil.copyfile(enc, ghiasi_paths(dst)[2])
    for s, d, m, images in pairs:
        feeds = calibration_feeds(m, images, size)
        d.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            prepped = Path(tmp) / "prep.onnx"
            quant_pre_process(str(s), str(prepped), skip_symbolic_shape=True)
            in_float = _float_convs(onnx.load(str(prepped)), float_last)
            if mode == "dynamic":
                quantize_dynamic(str(prepped), str(d), weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=True, op_types_to_quantize=["Conv"], nodes_to_exclude=in_float)
            else:
                quantize_static(str(prepped), str(d), _reader(feeds),
                                quant_format=QuantFormat.QDQ,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                                reduce_range=True, calibrate_method=CalibrationMethod.MinMax,
                                op_types_to_quantize=["Conv"], nodes_to_exclude=in_float,
                                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        model = onnx.load(str(d))  # keep the metadata the stylizers read, noting the quantization
        props = {p.key: p.value for p in model.metadata_props}
        if META_KEY not in props:
            entry = model.metadata_props.add()
            entry.key, entry.value = META_KEY, json.dumps({**{k: v for k, v in m.items() if k != "_path"},
                                                           "quantized": mode})
        space_to_depth(model)
        hoist_quantize(model)
        pad_conv_outputs(model)
        onnx.save(model, str(d))
    return dst


def model_bytes(path: str | Path) -> int:
    """Size on disk of an export, AdaIN's encoder graph included."""
    p = Path(path)
    extra = encoder_path(p)
    return p.stat().st_size + (extra.stat().st_size if extra.is_file() and extra != p else 0)
