"""Instance norms with statistics from elsewhere, for torch nets: the torch half of tiling with a
thumbnail's statistics (URST, Chen et al. 2022; the onnxruntime half rewrites the exported graph,
:mod:`brushwork.inference.thumbnorm`).

Forward hooks on every norm of a net (brushwork's conditional instance norm and ``nn.InstanceNorm2d``,
in call order) either record the mean and variance of their input (a thumbnail pass) or replace the
norm's output by the input normalised with given statistics and the norm's own scale and shift.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from brushwork.methods.feedforward import ConditionalInstanceNorm2d, NormParams
from brushwork.tiling import NormRunner, NormStats


def _affine(module: nn.Module, args: tuple[Any, ...], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C)`` scale and shift the norm ``module`` would apply to ``x`` in this call."""
    if isinstance(module, ConditionalInstanceNorm2d):
        sw = args[1] if len(args) > 1 else None
        return sw.get(module) if isinstance(sw, NormParams) else module.mix(sw)
    c = x.shape[1]
    if getattr(module, "affine", False):
        return module.weight[None], module.bias[None]
    return x.new_ones(1, c, dtype=torch.float32), x.new_zeros(1, c, dtype=torch.float32)


@contextlib.contextmanager
def norm_statistics(net: nn.Module, stats: NormStats | None = None,
                    record: list[tuple[np.ndarray, np.ndarray]] | None = None) -> Iterator[None]:
    """Within the block, the k-th norm called in ``net`` normalises with ``stats[k]`` (when given) and
    appends the (mean, variance) of its input to ``record`` (when given)."""
    norms = [m for m in net.modules() if isinstance(m, (ConditionalInstanceNorm2d, nn.InstanceNorm2d))]
    calls = [0]

    def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
        x = args[0]
        k = calls[0]
        calls[0] += 1
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        if record is not None:
            var, mean = torch.var_mean(xf, dim=(2, 3), unbiased=False)
            record.append((mean[0].double().cpu().numpy(), var[0].double().cpu().numpy()))
        if stats is None:
            return None
        mean_k, var_k = (torch.as_tensor(v, dtype=torch.float32, device=x.device)[None, :, None, None]
                         for v in stats[k])
        gamma, beta = _affine(module, args, x)
        y = (xf - mean_k) * torch.rsqrt(var_k + module.eps) * gamma[:, :, None, None] + beta[:, :, None, None]
        return y.to(output.dtype)

    handles = [m.register_forward_hook(hook) for m in norms]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


class TorchNormRunner(NormRunner):
    """:class:`brushwork.tiling.NormRunner` for a torch net: ``forward`` maps a ``(1, 3, h, w)`` float32
    tensor in 0..1 to the stylized one (on ``device``), running the norms of ``net``."""

    def __init__(self, net: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                 device: torch.device | str = "cpu") -> None:
        self.net, self.forward, self.device = net, forward, torch.device(device)

    def _call(self, x: np.ndarray) -> np.ndarray:
        y = self.forward(torch.from_numpy(x).to(self.device))
        return y.float().clamp(0, 1).cpu().numpy()

    def run(self, x: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        return self._call(x)

    def measure(self, x: np.ndarray) -> NormStats:
        record: list[tuple[np.ndarray, np.ndarray]] = []
        with norm_statistics(self.net, record=record):
            self._call(x)
        return record

    def apply(self, x: np.ndarray, stats: NormStats, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
        with norm_statistics(self.net, stats):
            return self._call(x)
