"""Instance norms that take their statistics from outside, in an exported graph (URST's thumbnail
instance normalisation, Chen et al. 2022, on onnxruntime).

A tile normalised with its own statistics gets its own colour and contrast; the same tile
normalised with the whole image's statistics is painted like its neighbours. Every
``InstanceNormalization`` node of a brushwork export (feed-forward, ghiasi, cyclegan; fp32 or INT8:
its input is float there too) is rewritten here:

- ``measure``: the node is kept, and the mean and mean square of its input become extra outputs;
- ``apply``: the node becomes ``x * a + b`` with ``a = scale / sqrt(var + eps)`` and
  ``b = bias - mean * a`` built from two extra inputs per norm (``mean``, ``invstd``), so the
  statistics are whatever the caller passes (a thumbnail's).

Graphs are built in memory with ``onnx`` (no torch) and cached per source file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from brushwork.errors import ModelError
from brushwork.tiling import NormRunner, NormStats


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise ModelError("tiling an exported model needs the onnx package: pip install onnx") from None
    return onnx


def rewrite_norms(model: Any, apply: bool, measure: bool) -> tuple[Any, int]:
    """A copy of ``model`` (an ``onnx.ModelProto``) with its instance norms rewritten (see the module
    docstring); also the number of norms. Extra inputs ``bw_norm{k}_mean`` / ``bw_norm{k}_invstd``
    ``(1, C, 1, 1)``; extra outputs ``bw_norm{k}_m`` / ``bw_norm{k}_q`` (mean, mean square)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    nodes = list(g.node)
    del g.node[:]
    if measure:
        g.initializer.append(numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "bw_axes_hw"))
    if apply:
        g.initializer.append(numpy_helper.from_array(np.array([1, -1, 1, 1], dtype=np.int64), "bw_shape_c"))
    k = 0
    for node in nodes:
        if node.op_type != "InstanceNormalization":
            g.node.append(node)
            continue
        x, scale, bias = node.input
        (y,) = node.output  # eps is the caller's: it passes invstd = 1 / sqrt(var + eps) (norm_epsilons)
        p = f"bw_norm{k}"
        if measure:
            g.node.extend([helper.make_node("ReduceMean", [x, "bw_axes_hw"], [p + "_m"], keepdims=1),
                           helper.make_node("Mul", [x, x], [p + "_xx"]),
                           helper.make_node("ReduceMean", [p + "_xx", "bw_axes_hw"], [p + "_q"], keepdims=1)])
            g.output.extend([helper.make_tensor_value_info(p + "_m", TensorProto.FLOAT, None),
                             helper.make_tensor_value_info(p + "_q", TensorProto.FLOAT, None)])
        if apply:
            g.input.extend([helper.make_tensor_value_info(p + "_mean", TensorProto.FLOAT, [1, None, 1, 1]),
                            helper.make_tensor_value_info(p + "_invstd", TensorProto.FLOAT, [1, None, 1, 1])])
            g.node.extend([
                helper.make_node("Reshape", [scale, "bw_shape_c"], [p + "_s4"]),
                helper.make_node("Reshape", [bias, "bw_shape_c"], [p + "_b4"]),
                helper.make_node("Mul", [p + "_s4", p + "_invstd"], [p + "_a"]),
                helper.make_node("Mul", [p + "_mean", p + "_a"], [p + "_ma"]),
                helper.make_node("Sub", [p + "_b4", p + "_ma"], [p + "_b"]),
                helper.make_node("Mul", [x, p + "_a"], [p + "_xa"]),
                helper.make_node("Add", [p + "_xa", p + "_b"], [y]),
            ])
        else:
            g.node.append(node)
        k += 1
    if k == 0:
        raise ModelError("this graph has no instance norms: it needs no tiling statistics")
    return out, k


def norm_epsilons(model: Any) -> list[float]:
    """The epsilon of each instance norm, in graph order."""
    return [next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
            for n in model.graph.node if n.op_type == "InstanceNormalization"]


class NormGraphs:
    """The three rewritten sessions of one exported graph, built on first use."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self._model: Any = None
        self._sessions: dict[tuple[bool, bool], Any] = {}
        self.eps: list[float] = []

    def _session(self, apply: bool, measure: bool) -> Any:
        key = (apply, measure)
        if key not in self._sessions:
            from brushwork.inference.session import session_from_bytes

            if self._model is None:
                self._model = _onnx().load(str(self.path))
                self.eps = norm_epsilons(self._model)
            graph, _ = rewrite_norms(self._model, apply, measure)
            # the thumbnail is measured once: no arena kept at its peak beside the tiles' one
            self._sessions[key] = session_from_bytes(graph.SerializeToString(), self.path, self.threads,
                                                     arena=apply)
        return self._sessions[key]

    def measure(self, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, NormStats]:
        """The graph's output on ``feeds`` with its own statistics, and those statistics."""
        sess = self._session(False, True)
        outs = sess.run(None, feeds)
        return outs[0], _stats(outs[1:])

    def apply(self, feeds: dict[str, np.ndarray], stats: NormStats) -> np.ndarray:
        """The output with the norms using ``stats``."""
        sess = self._session(True, False)
        extra: dict[str, np.ndarray] = {}
        for k, ((mean, var), eps) in enumerate(zip(stats, self.eps)):
            extra[f"bw_norm{k}_mean"] = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
            extra[f"bw_norm{k}_invstd"] = (1.0 / np.sqrt(np.asarray(var, np.float64) + eps)).astype(
                np.float32).reshape(1, -1, 1, 1)
        return sess.run(None, {**feeds, **extra})[0]


def _stats(flat: Sequence[np.ndarray]) -> NormStats:
    """(mean, variance) per norm from the graph's interleaved (mean, mean square) outputs."""
    out = []
    for m, q in zip(flat[0::2], flat[1::2]):
        m64, q64 = np.asarray(m, np.float64).reshape(-1), np.asarray(q, np.float64).reshape(-1)
        out.append((m64, np.maximum(q64 - m64 * m64, 0.0)))
    return out


class OrtNormRunner(NormRunner):
    """:class:`brushwork.tiling.NormRunner` for an exported graph: ``feeds`` are its inputs besides the image
    (style weights, an embedding), ``pad_multiple`` its strides, ``plain`` the graph's own session."""

    def __init__(self, graphs: NormGraphs, feeds: dict[str, np.ndarray], pad_multiple: int, plain: Any) -> None:
        self.graphs, self.feeds, self.multiple, self.plain = graphs, feeds, pad_multiple, plain

    def run(self, x: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        from brushwork.inference.arrays import pad_to

        xp, h, w = pad_to(x, self.multiple)
        return np.clip(self.plain.run(None, {"image": xp, **self.feeds})[0][..., :h, :w], 0.0, 1.0)

    def measure(self, x: np.ndarray) -> NormStats:
        from brushwork.inference.arrays import pad_to

        xp, _, _ = pad_to(x, self.multiple)
        return self.graphs.measure({"image": xp, **self.feeds})[1]

    def apply(self, x: np.ndarray, stats: NormStats, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        from brushwork.inference.arrays import pad_to

        xp, h, w = pad_to(x, self.multiple)
        return np.clip(self.graphs.apply({"image": xp, **self.feeds}, stats)[..., :h, :w], 0.0, 1.0)
