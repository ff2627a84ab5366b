"""The palette finish as an ONNX graph: the colour map, the soft gamut and the 8-bit picture in one run.

After a ghiasi pass the default finish moves the colours towards the painting's (a 3x3 map), rolls the
ends of the range off (:func:`brushwork.inference.arrays.soft_gamut`) and makes the uint8 picture. On
numpy that is eight single-threaded passes over fresh memory (30-70 ms at 1024 px in a one-photo command);
onnxruntime runs the same operations, in the same order, on all cores (~10-30 ms). The graph ships as
``brushwork/inference/palette_finish.onnx`` (a few hundred bytes, no torch or onnx needed to run it);
:func:`build` makes it, and a test checks the shipped file is what it makes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: where the runtime reads the graph
SHIPPED = Path(__file__).resolve().parents[1] / "inference" / "palette_finish.onnx"


def build() -> Any:
    """The graph: ``y`` (1, 3, H, W) float in 0..1, ``W`` (3, 3, 1, 1) and ``B`` (3,) the colour map ->
    ``image`` (1, H, W, 3) uint8; each step as numpy's finish does it (``soft_gamut`` then ``to_uint8``)."""
    from onnx import TensorProto, helper

    from brushwork.inference.arrays import GAMUT_KNEE

    k = float(GAMUT_KNEE)

    def const(name: str, value: float) -> Any:
        return helper.make_tensor(name, TensorProto.FLOAT, [], [value])

    nodes = [
        helper.make_node("Conv", ["y", "W", "B"], ["z"]),  # M @ rgb + c per pixel
        helper.make_node("Clip", ["z", "knee", "top"], ["inner"]),
        helper.make_node("Sub", ["z", "inner"], ["beyond"]),
        helper.make_node("Div", ["beyond", "knee"], ["scaled"]),
        helper.make_node("Tanh", ["scaled"], ["rolled"]),
        helper.make_node("Mul", ["rolled", "knee"], ["shoulder"]),
        helper.make_node("Add", ["shoulder", "inner"], ["soft"]),
        helper.make_node("Clip", ["soft", "zero", "one"], ["unit"]),
        helper.make_node("Mul", ["unit", "s255"], ["levels"]),
        helper.make_node("Add", ["levels", "half"], ["rounded"]),
        helper.make_node("Transpose", ["rounded"], ["hwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Cast", ["hwc"], ["image"], to=TensorProto.UINT8),  # truncates, as astype does
    ]
    graph = helper.make_graph(
        nodes, "brushwork_palette_finish",
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "H", "W"]),
         helper.make_tensor_value_info("W", TensorProto.FLOAT, [3, 3, 1, 1]),
         helper.make_tensor_value_info("B", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, "H", "W", 3])],
        initializer=[const("knee", k), const("top", 1.0 - k), const("zero", 0.0), const("one", 1.0),
                     const("s255", 255.0), const("half", 0.5)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="brushwork")
    model.ir_version = 8
    return model


def write(path: Path = SHIPPED) -> Path:
    """Write :func:`build`'s graph (``python -c "from brushwork.export.finish import write; write()"``)."""
    path.write_bytes(build().SerializeToString())
    return path
