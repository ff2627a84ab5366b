"""Exact rewrites of exported ONNX graphs that onnxruntime's own optimizer does not make.

Each pass leaves every output value as it was (bit for bit) and only changes how much memory the
graph moves: on a 2-core CPU a 1024 px pass through the sub-pixel nets is bound by memory traffic
(padding, layout changes, norms), not by the convolutions' arithmetic.
"""

from __future__ import annotations

import heapq
from typing import Any

from brushwork.errors import ConfigError

# Ops that only move or copy values: a per-tensor quantization before them gives the same numbers as after
# them, and they then move a quarter of the bytes. Pad counts for reflect/edge only, Resize for nearest only.
MOVERS = ("Pad", "Resize", "Reshape", "Transpose", "DepthToSpace", "SpaceToDepth", "Gather")
_UNSHUFFLE_PERM = [0, 1, 3, 5, 2, 4]  # how the exporter writes pixel_unshuffle: (N, C, H/r, r, W/r, r) -> ...


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def moves_values(node: Any) -> bool:
    """Whether ``node`` only moves its first input's values (so it commutes with per-element maps)."""
    attrs = _attrs(node)
    if node.op_type == "Pad":
        return attrs.get("mode", b"constant") in (b"reflect", b"edge")
    if node.op_type == "Resize":
        return attrs.get("mode", b"nearest") == b"nearest"
    return node.op_type in MOVERS


def _links(graph: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    return producer, consumers


def _scalar_constants(graph: Any) -> set[str]:
    """Names of the one-value initializers: a Quantize/DequantizeLinear whose scale is one of them quantizes
    the whole tensor alike (activations; weights are per channel)."""
    return {t.name for t in graph.initializer if all(d == 1 for d in t.dims)}


def hoist_quantize(model: Any) -> int:
    """Move each per-tensor QuantizeLinear up past the value-moving ops before it (the reflection pads and the
    nearest upsampling in front of every convolution, the pixel unshuffle at the input) and each
    DequantizeLinear down past those after it (the pixel shuffle at the output); returns how many moves.

    The quantizer puts the QuantizeLinear right before the convolution, so onnxruntime pads and upsamples
    in float and cannot fuse the ReLU into the quantization; after the moves those run on uint8. A 1024 px
    sub-pixel pass runs ~12-20% faster. Shape ops that read a moved tensor read its quantized twin (same
    shape)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    scalars = _scalar_constants(graph)  # the moves add no initializers
    moves = 0
    while _move_one(graph, outputs, scalars, moves):
        moves += 1
    if moves:
        sort_nodes(graph)
    return moves


def _move_one(graph: Any, outputs: set[str], scalars: set[str], tag: int) -> bool:
    producer, consumers = _links(graph)
    for q in graph.node:
        if q.op_type == "QuantizeLinear" and q.input[0] in producer and q.input[1] in scalars:
            p = producer[q.input[0]]
            if not moves_values(p) or p.output[0] in outputs:
                continue
            others = [c for c in consumers[p.output[0]] if c is not q]
            if any(c.op_type != "Shape" for c in others):
                continue
            out, mid = q.output[0], f"{q.output[0]}_hoisted{tag}"
            for c in others:
                c.input[0] = out
            q.input[0], q.output[0], p.input[0], p.output[0] = p.input[0], mid, mid, out
            return True
        if q.op_type == "DequantizeLinear" and q.input[0] in producer and q.input[1] in scalars:
            users = consumers.get(q.output[0], [])
            if len(users) != 1 or q.output[0] in outputs:
                continue
            c = users[0]
            if not moves_values(c) or c.input[0] != q.output[0]:
                continue
            out, mid = c.output[0], f"{c.output[0]}_sunk{tag}"
            c.input[0], c.output[0], q.input[0], q.output[0] = q.input[0], mid, mid, out
            return True
    return False


def space_to_depth(model: Any) -> int:
    """Replace each pixel unshuffle (reshapes around a 6-d transpose, as the exporter writes it) by onnxruntime's
    SpaceToDepth and a channel Gather into PyTorch's channel order; returns how many were replaced.

    The 6-d transpose is onnxruntime's slow generic path: 12-16 ms for a 1024 px photo against ~2.5 ms.
    Needs the input's channel count from shape inference; left alone where it is unknown."""
    import numpy as np
    from onnx import helper, numpy_helper, shape_inference

    graph = model.graph
    try:
        inferred = shape_inference.infer_shapes(model).graph
    except Exception:  # an unusual graph: leave it as it is
        return 0
    channels: dict[str, int] = {}
    for v in [*inferred.value_info, *inferred.input]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].HasField("dim_value"):
            channels[v.name] = dims[1].dim_value
    outputs = {o.name for o in graph.output}
    done = 0
    for t in list(graph.node):
        if t.op_type != "Transpose" or _attrs(t).get("perm") != _UNSHUFFLE_PERM:
            continue
        producer, consumers = _links(graph)
        start = producer.get(t.input[0])
        block = _six_d_block(graph, start)
        if block is None:
            continue
        x = start.input[0]
        while x in producer and producer[x].op_type == "Reshape" and x not in channels:
            x = producer[x].input[0]
        y = t.output[0]
        while True:  # the reshapes after it, up to the 4-d result
            users = [c for c in consumers.get(y, []) if c.op_type != "Shape"]
            if len(users) != 1 or users[0].op_type != "Reshape" or y in outputs:
                break
            y = users[0].output[0]
        if x not in channels or y == t.output[0] or y in outputs:
            continue
        c, r = channels[x], block
        # PyTorch's channel c*r*r + i*r + j is SpaceToDepth's (i*r + j)*C + c
        order = np.array([(i * r + j) * c + ch for ch in range(c) for i in range(r) for j in range(r)], np.int64)
        idx = numpy_helper.from_array(order, f"{y}_channel_order")
        graph.initializer.append(idx)
        s2d = f"{y}_space_to_depth"
        graph.node.append(helper.make_node("SpaceToDepth", [x], [s2d], blocksize=r, name=f"{y}_s2d"))
        for n in graph.node:
            for k, name in enumerate(n.input):
                if name == y:
                    n.input[k] = f"{y}_gathered"
        graph.node.append(helper.make_node("Gather", [s2d, idx.name], [f"{y}_gathered"], axis=1, name=f"{y}_gather"))
        done += 1
    if done:
        remove_dead_nodes(graph)
        sort_nodes(graph)
    return done


def _six_d_block(graph: Any, reshape: Any) -> int | None:
    """The block size r of a Reshape to (N, C, H/r, r, W/r, r), read from the constants it is built from."""
    from onnx import numpy_helper

    if reshape is None or reshape.op_type != "Reshape":
        return None
    producer, _ = _links(graph)
    inits = {t.name: t for t in graph.initializer}

    def const(name: str) -> Any:  # only the few small shape constants are converted, never the weights
        if name in inits:
            return numpy_helper.to_array(inits[name])
        node = producer.get(name)
        if node is not None and node.op_type == "Constant":
            return next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"), None)
        return None

    shape = reshape.input[1]
    vals = const(shape)
    if vals is not None:
        vals = vals.reshape(-1)
        return int(vals[3]) if len(vals) == 6 and vals[3] == vals[5] and vals[3] > 1 else None
    concat = producer.get(shape)
    if concat is None or concat.op_type != "Concat" or len(concat.input) != 6:
        return None
    a, b = (const(concat.input[k]) for k in (3, 5))
    if a is None or b is None or a.size != 1 or b.size != 1 or int(a.reshape(-1)[0]) != int(b.reshape(-1)[0]):
        return None
    r = int(a.reshape(-1)[0])
    return r if r > 1 else None


def remove_dead_nodes(graph: Any) -> None:
    """Drop nodes none of whose outputs is used, and unused constants (what a rewrite leaves behind;
    onnxruntime warns about each unused one on every load)."""
    outputs = {o.name for o in graph.output}
    while True:
        used = {i for n in graph.node for i in n.input} | outputs
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)


def sort_nodes(graph: Any) -> None:
    """Topological order (ONNX requires it), keeping the original order where it is free to."""
    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    waits = [{producer[x] for x in n.input if x in producer} for n in nodes]
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(waits):
        for d in deps:
            users.setdefault(d, []).append(i)
    ready = [i for i, deps in enumerate(waits) if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(nodes[i])
        for u in users.get(i, []):
            waits[u].discard(i)
            if not waits[u]:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        raise ConfigError("the rewritten graph has a cycle")
    del graph.node[:]
    graph.node.extend(order)


#: onnxruntime's int8 and fp32 convolution kernels work on blocks of 16 output channels (8 on AVX2 fp32)
CHANNEL_BLOCK = 16


def pad_conv_outputs(model: Any, block: int = CHANNEL_BLOCK) -> int:
    """Give each convolution with 4 to ``block - 1`` output channels zero filters up to ``block``, with a channel
    Slice after it (after its per-tensor QuantizeLinear in a QDQ graph, on uint8); returns how many were padded.
    An RGB layer (under 4 outputs) is left alone, and so are wider layers (a partial block there costs less
    than the filters padding would add).

    A sub-pixel net's last layer has 12 outputs (2x2 RGB blocks); onnxruntime runs a 12-channel convolution
    on a slow path: 48-50 ms at 1024 px against 11-20 ms with 16 (AVX2 and VNNI kernels). The padded filters
    are zeros and are sliced away, so every output is as before, bit for bit."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer, consumers = _links(graph)
    outputs = {o.name for o in graph.output}
    done = 0
    for conv in list(graph.node):
        if conv.op_type != "Conv" or _attrs(conv).get("group", 1) != 1:
            continue
        weights = _padded_inputs(conv, producer, inits)
        if weights is None:
            continue
        c = int(numpy_helper.to_array(inits[weights[0][0]]).shape[0])
        # the slice goes after a per-tensor QuantizeLinear when the convolution feeds only that
        after = conv.output[0]
        users = consumers.get(after, [])
        if len(users) == 1 and users[0].op_type == "QuantizeLinear" and users[0].input[1] in _scalar_constants(graph):
            after = users[0].output[0]
        if not 4 <= c < block or after in outputs:
            continue
        want = block
        for name, fill_like in weights:
            arr = numpy_helper.to_array(inits[name])
            if arr.ndim == 0 or arr.shape[0] != c:  # a per-tensor scale or zero point: shared by every filter
                continue
            extra = (np.repeat(arr[:1], want - c, axis=0) if fill_like
                     else np.zeros((want - c, *arr.shape[1:]), arr.dtype))
            inits[name].CopyFrom(numpy_helper.from_array(np.concatenate([arr, extra]), name))
        sliced = f"{after}_sliced"
        for n in graph.node:
            for k, name in enumerate(n.input):
                if name == after:
                    n.input[k] = sliced
        consts = [numpy_helper.from_array(np.array(v, np.int64), f"{after}_slice_{tag}")
                  for tag, v in (("starts", [0]), ("ends", [c]), ("axes", [1]))]
        graph.initializer.extend(consts)
        graph.node.append(helper.make_node("Slice", [after, *(t.name for t in consts)], [sliced],
                                           name=f"{after}_slice"))
        done += 1
    if done:
        padded = {n.output[0] for n in graph.node if n.op_type in ("Conv", "QuantizeLinear", "DequantizeLinear")}
        keep = [v for v in graph.value_info if v.name not in padded]  # stale shapes: onnxruntime warns on each
        del graph.value_info[:]
        graph.value_info.extend(keep)
        sort_nodes(graph)
    return done


def _padded_inputs(conv: Any, producer: dict[str, Any], inits: dict[str, Any]) -> list[tuple[str, bool]] | None:
    """The initializers of a convolution's weight and bias that carry one row per output channel, each with
    whether its new rows copy the first one (scales: any positive value) or are zeros (weights, biases, zero
    points); None where the weight is neither an initializer nor a DequantizeLinear of one."""
    rows: list[tuple[str, bool]] = []
    for name in conv.input[1:3]:
        if name in inits:
            rows.append((name, False))
            continue
        dq = producer.get(name)
        if dq is None or dq.op_type != "DequantizeLinear" or not all(i in inits for i in dq.input):
            return None
        if _attrs(dq).get("axis", 1) != 0 and inits[dq.input[1]].dims not in ([], [1]):
            return None
        rows.append((dq.input[0], False))
        rows.append((dq.input[1], True))
        if len(dq.input) > 2:
            rows.append((dq.input[2], False))
    return rows or None
