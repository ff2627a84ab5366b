"""ONNX export of a trained CycleGAN, and its onnxruntime stylizer.

Each direction is its own graph (a step picks one generator; a graph that ran both would cost
twice): ``OUT.onnx`` paints photos (``image (1,3,H,W)`` in 0..1, reflection-padded to a multiple
of ``pad_multiple``, -> ``stylized``) and ``OUT.reverse.onnx`` turns paintings into photos. The
metadata says which domain each produces, so ``brushwork export quantize`` and the stylizer need
nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from brushwork import __version__
from brushwork.errors import ConfigError, ModelError, ResourceError
from brushwork.export.onnx import META_KEY, _export, _hw_dims
from brushwork.inference.cyclegan import reverse_path
from brushwork.inference.thumbnorm import NormGraphs, OrtNormRunner
from brushwork.methods.cyclegan import KIND, CycleGANNet, CycleGANStylizer


def _session(path: Path, threads: int | None = None) -> tuple[Any, dict[str, Any]]:
    """An onnxruntime CPU session and the graph's brushwork metadata; one line for a file that is not one."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ResourceError("onnxruntime is not installed: pip install 'brushwork[onnx]'") from None
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        return sess, json.loads(sess.get_modelmeta().custom_metadata_map[META_KEY])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{path} is not a brushwork ONNX export: {exc}") from exc
    except Exception as exc:  # onnxruntime raises its own types for unreadable files
        raise ModelError(f"cannot load ONNX model {path}: {str(exc).splitlines()[0][:200]}") from exc


class _DirectionGraph(nn.Module):
    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return ((self.generator(image * 2 - 1) + 1) / 2).clamp(0, 1)


def export_cyclegan(folder: str | Path, out: str | Path) -> tuple[Path, Path]:
    """Both directions of a CycleGAN model folder as two fp32 ONNX files; returns (forward, reverse)."""
    net = CycleGANNet.from_pretrained(folder).float()
    names = list(net.config.names)
    h, w = _hw_dims()
    m = net.config.multiple
    dummy = (torch.rand(1, 3, 2 * max(m, 32), 3 * max(m, 32)),)
    paths = []
    for generator, produces, path in ((net.g_ab, names[0], Path(out)), (net.g_ba, names[1], reverse_path(out))):
        meta = {"kind": KIND, "style_names": names, "produces": produces, "pad_multiple": m, "inputs": ["image"],
                "widths": list(net.config.widths)}
        paths.append(_export(_DirectionGraph(generator), dummy, ("image",), {"image": {2: h, 3: w}}, path, meta))
    return paths[0], paths[1]


class _OnnxConfig:
    """Stands in for the net's config where the torch stylizer reads it (memory estimate, kind)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.kind, self.widths = KIND, tuple(meta.get("widths", (32, 64, 128)))


class _OnnxCycleGANNet:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.style_names = tuple(meta["style_names"])
        self.config = _OnnxConfig(meta)


class OnnxCycleGAN(CycleGANStylizer):
    """:class:`~brushwork.methods.cyclegan.CycleGANStylizer` with the generators run by onnxruntime: the
    given graph, and the other direction's when it lies beside it (``*.reverse.onnx``)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"ONNX model not found: {path}")
        self.sessions: dict[str, Any] = {}
        self.norms: dict[str, NormGraphs] = {}
        meta: dict[str, Any] = {}
        for p in (path, reverse_path(path)):
            if p.is_file():
                sess, meta_p = _session(p, threads)
                if meta_p.get("kind") != KIND:
                    raise ModelError(f"{p} holds a '{meta_p.get('kind')}' export, not a CycleGAN")
                self.sessions[meta_p["produces"]] = sess
                self.norms[meta_p["produces"]] = NormGraphs(p, threads)  # tiled graphs, built on first use
                meta = meta or meta_p
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self.net = _OnnxCycleGANNet(meta)
        self.pad_multiple = int(meta["pad_multiple"])
        self.path = path

    @classmethod
    def from_model_dir(cls, folder: str | Path, threads: int | None = None) -> OnnxCycleGAN:
        """The cached export of a trained folder (exported on first use)."""
        from brushwork.encoders.hub import cache_dir

        digest = hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()[:16]
        out = cache_dir() / "onnx" / f"cyclegan-{digest}-{__version__}.onnx"
        if not out.is_file() or not reverse_path(out).is_file():
            export_cyclegan(folder, out)
        return cls(out, threads)

    def _direction(self, style_weights: torch.Tensor) -> str:
        names = self.style_names
        produces = names[1] if float(style_weights[0, 1]) > float(style_weights[0, 0]) else names[0]
        if produces not in self.sessions:
            raise ConfigError(f"{self.path.name} holds only the {', '.join(self.sessions)} direction (no "
                              f"{reverse_path(self.path).name} beside it)")
        return produces

    def norm_runner(self, weights: torch.Tensor) -> OrtNormRunner:
        """The direction these weights choose on onnxruntime, for one pass or tiles."""
        produces = self._direction(weights)
        return OrtNormRunner(self.norms[produces], {}, self.pad_multiple, self.sessions[produces])

    def transform(self, photo: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        produces = self._direction(style_weights)
        x = photo.float().cpu()
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.pad_multiple, (-w) % self.pad_multiple
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
        (y,) = self.sessions[produces].run(None, {"image": x.numpy()})
        return torch.from_numpy(y)[..., :h, :w].clamp(0, 1)
