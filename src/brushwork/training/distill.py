"""Distillation: a trained johnson/cin net teaches a smaller, faster one.

Perceptual-loss training needs VGG19 forward and backward passes and a GPU's hours; copying
a trained net needs neither. The student (smaller end kernels, fewer residual blocks or
channels) starts from the teacher's weights wherever they fit (a smaller kernel takes the
teacher kernel's centre) and learns to reproduce the teacher's output pixel for pixel (L1)
on random photo crops, so hours of style training carry over and a CPU finishes the
copy in an hour. Batches mix single styles and random two-style blends, so the student
also blends as the teacher does. Resumable like every trainer (:mod:`brushwork.training.loop`).
"""

from __future__ import annotations

import json
import math
import platform
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from brushwork.encoders.hub import sha256_of
from brushwork.errors import ConfigError
from brushwork.methods.feedforward import TransformerConfig, TransformerNet, layer_map
from brushwork.methods.ghiasi import GhiasiConfig, GhiasiNet
from brushwork.pretrained import WEIGHTS, frozen, norm_net_memory_format
from brushwork.registry import resolve_model
from brushwork.runtime import autocast, resolve_device, resolve_precision
from brushwork.training import distributed
from brushwork.training.data import RandomCrops
from brushwork.training.feedforward import SATURATION_LOGIT
from brushwork.training.loop import LoopConfig, net_run_state, optimizer_step, restore_net_run

Layout = TypeVar("Layout", TransformerConfig, GhiasiConfig)


def _renamed(name: str, rename: dict[str, str] | None) -> str:
    """``name`` with its first matching ``rename`` prefix replaced (see :func:`layer_map`)."""
    pre = next((p for p in (rename or {}) if name.startswith(p)), None)
    return name if pre is None else (rename or {})[pre] + name[len(pre):]


@dataclass
class DistillConfig:
    """A distillation run. ``widths``/``n_residual``/``end_kernel`` None keep the teacher's;
    ``subpixel`` True makes a student with no full-resolution layers (:class:`TransformerConfig`).

    ``lr`` 2e-4: a fifth of from-scratch training, since the student starts close to the
    teacher and a large step would first undo what it copied. ``blend``: the share of batch
    items that train a random blend of two styles rather than one style.
    """

    teacher: str  # a model folder, a shipped model's name or one of its styles ("ghiasi": the shipped one)
    content: list[str]
    out_dir: str
    styles: list[str] = field(default_factory=list)  # painting folders: a ghiasi teacher paints with these
    exclude_styles: list[str] = field(default_factory=list)
    widths: tuple[int, ...] | None = None
    n_residual: int | None = None
    end_kernel: int | None = None
    subpixel: bool = False
    stem: int | None = None
    init: str | None = None  # a previous student to start from (its layers where they fit)
    steps: int = 3000
    batch: int = 8
    crop: int = 256
    lr: float = 2e-4
    lr_decay: float = 0.0
    blend: float = 0.25
    saturation_weight: float = 1.0
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 10
    exclude: list[str] = field(default_factory=list)
    command: str = ""

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ConfigError(f"need steps >= 1 and batch >= 1, got {self.steps} and {self.batch}")
        if self.crop < 64 or self.crop % 4:
            raise ConfigError(f"crop must be a multiple of 4 and at least 64 px, got {self.crop}")
        if not 0 <= self.blend <= 1:
            raise ConfigError(f"blend must be between 0 and 1, got {self.blend}")
        if self.stem is not None and self.stem < 1:
            raise ConfigError(f"stem must be at least 1 layer, got {self.stem}")
        for name in ("lr", "lr_decay", "saturation_weight"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0 or (name == "lr" and v == 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a number {'>' if name == 'lr' else '>='} 0, "
                                  f"got {v}")


def student_config(teacher: Layout, cfg: DistillConfig) -> Layout:
    """The teacher's config (a transformer's or a ghiasi net's) with the sizes ``cfg`` changes (same styles,
    same names)."""
    changes = {k: v for k, v in (("widths", cfg.widths), ("n_residual", cfg.n_residual),
                                 ("end_kernel", cfg.end_kernel)) if v is not None}
    sub = cfg.subpixel or teacher.subpixel
    return replace(teacher, **changes, subpixel=sub, stem=cfg.stem or (teacher.stem if teacher.subpixel else 1))


def transfer_weights(student: nn.Module, teacher: nn.Module, rename: dict[str, str] | None = None) -> list[str]:
    """Copy every teacher tensor whose name the student shares into it; returns the names left as initialised.

    ``rename`` maps student name prefixes to the teacher's where the same layer sits elsewhere
    (a sub-pixel student of a plain teacher: :func:`~brushwork.methods.feedforward.layer_map`).

    Same shape: copied. A conv kernel that is smaller but otherwise alike takes the teacher
    kernel's centre (the taps that matter most). A narrower layer (fewer output and/or input
    channels, same kernel) takes the teacher's leading channels: a channel-sliced warm start, which
    keeps most of what the teacher computes for training to repair. Anything else (wider layers,
    residual blocks the teacher lacks) keeps its fresh initialisation for training to fill.
    """
    src, rename = teacher.state_dict(), rename or {}
    claimed = set(rename.values())  # teacher layers another student layer copies: not sliced by name
    fresh = []
    with torch.no_grad():
        for name, param in student.state_dict().items():
            t = src.get(_renamed(name, rename))
            moved = any(name.startswith(p) for p in rename)
            sliceable = moved or not any(name.startswith(p) for p in claimed)
            if t is not None and t.shape == param.shape:
                param.copy_(t)
            elif (t is not None and t.dim() == 4 and t.shape[:2] == param.shape[:2]
                  and all(a >= b and (a - b) % 2 == 0 for a, b in zip(t.shape[2:], param.shape[2:]))):
                dh, dw = (t.shape[2] - param.shape[2]) // 2, (t.shape[3] - param.shape[3]) // 2
                param.copy_(t[:, :, dh : dh + param.shape[2], dw : dw + param.shape[3]])
            elif (sliceable and t is not None and t.dim() == param.dim() >= 1 and t.shape[2:] == param.shape[2:]
                  and all(a >= b for a, b in zip(t.shape[:2], param.shape[:2]))):
                param.copy_(t[tuple(slice(0, n) for n in param.shape)])
            else:
                fresh.append(name)
    return fresh


class SubpixelTaps:
    """Layer-wise targets for a sub-pixel student of a plain teacher (their middles are the same layers).

    End to end, the student's new ends learn slowly through the copied middle (a plateau at 3x the
    plain student's error). Split, each is a small direct problem: the student's first layer must give
    the teacher's 1/2-resolution features (what the copied layers read), and its last two, fed the
    teacher's own 1/2-resolution decoder features, must give the teacher's picture. Both losses are
    added to the end-to-end one; forward hooks read the features, so the nets stay as they are.
    """

    def __init__(self, student: TransformerNet, teacher: TransformerNet) -> None:
        self.student, self.seen = student, {}
        self.hooks = [teacher.down[1].register_forward_hook(self._keep("teacher_half")),
                      teacher.up[0].register_forward_hook(self._keep("teacher_up")),
                      student.down[student.config.stem - 1].register_forward_hook(self._keep("student_half"))]

    def _keep(self, key: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            self.seen[key] = out
        return hook

    def losses(self, target: torch.Tensor, norms: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(first-layer feature L1, last-layers pixel L1) after a teacher and a student pass."""
        stem = (self.seen["student_half"].float() - self.seen["teacher_half"].detach().float()).abs().mean()
        z = self.student.out(self.student.up[1](self.seen["teacher_up"].detach(), norms)).float()
        return stem, (torch.sigmoid(z) - target).abs().mean()


def copy_loss(z: torch.Tensor, target: torch.Tensor, saturation_weight: float, taps: SubpixelTaps | None,
              norms: Any, dev: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, dict[str, float]]:
    """The student's loss for output logits ``z`` against the teacher's picture: pixel L1, the saturation
    penalty and, for a sub-pixel copy of a plain net, the layer-wise targets; with what to log."""
    loss_px = (torch.sigmoid(z) - target).abs().mean()
    loss_sat = (z.abs() - SATURATION_LOGIT).clamp_min(0).pow(2).mean()
    loss = loss_px + saturation_weight * loss_sat
    logged = {"l1": float(loss_px.detach()), "saturation": float(loss_sat.detach())}
    if taps is not None:
        with autocast(dev, dtype):
            stem, head = taps.losses(target, norms)
        loss = loss + stem + head
        logged.update(first_layer=float(stem.detach()), last_layers=float(head.detach()))
    return loss, logged


def param_groups(net: nn.Module, fresh: list[str], lr: float, copied_lr: float) -> list[dict[str, Any]]:
    """Adam groups: the freshly initialised tensors at ``lr``, those copied from the teacher at ``copied_lr``."""
    named = dict(net.named_parameters())
    new = [t for n, t in named.items() if n in fresh]
    old = [t for n, t in named.items() if n not in fresh]
    return [g for g in ({"params": new, "lr": lr}, {"params": old, "lr": copied_lr}) if g["params"]]


def random_style_weights(n_styles: int, batch: int, blend: float, rng: random.Random) -> torch.Tensor:
    """``(batch, n_styles)`` rows: one-hot (one style), or with probability ``blend`` a random convex pair."""
    w = torch.zeros(batch, n_styles)
    for i in range(batch):
        a = rng.randrange(n_styles)
        if n_styles > 1 and rng.random() < blend:
            b = rng.choice([k for k in range(n_styles) if k != a])
            t = rng.random()
            w[i, a], w[i, b] = t, 1 - t
        else:
            w[i, a] = 1.0
    return w


def _teacher_folder(name: str) -> tuple[Path, str | None]:
    """The teacher's folder and kind: a folder, the shipped ghiasi model, or a feed-forward model/style."""
    from brushwork.registry import models_dir

    path = Path(name)
    if not path.is_dir() and name == "ghiasi":
        path = models_dir() / "ghiasi"
    if not path.is_dir():
        path = resolve_model(name)[0]
    try:
        kind = json.loads((path / "config.json").read_text()).get("kind")
    except (OSError, ValueError, AttributeError):
        kind = None  # from_pretrained says what is wrong with the folder
    return path, kind


def distill_feedforward(cfg: DistillConfig, device: str | torch.device = "cpu",
                        progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train (or resume) a student of ``cfg.teacher`` in ``cfg.out_dir``; returns the student's model folder.
    A ghiasi teacher is copied by :func:`distill_ghiasi`."""
    cfg.validate()
    if _teacher_folder(cfg.teacher)[1] == "ghiasi":
        return distill_ghiasi(cfg, device, progress)
    dev = resolve_device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    dtype = resolve_precision(cfg.precision, dev)
    teacher_dir, _style = resolve_model(cfg.teacher)
    teacher_net = TransformerNet.from_pretrained(teacher_dir)
    teacher_sha = sha256_of(teacher_dir / WEIGHTS)
    net_cfg = student_config(teacher_net.config, cfg)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out_dir)
    contents = RandomCrops(cfg.content, cfg.crop, cfg.batch, seed=distributed.rank_seed(cfg.seed), exclude=cfg.exclude)
    c_iter = iter(contents)
    picker = random.Random(distributed.rank_seed(cfg.seed) + 2)
    layout = norm_net_memory_format(dev)
    net = TransformerNet(net_cfg)
    plain_to_sub = net_cfg.subpixel and not teacher_net.config.subpixel
    fresh = transfer_weights(net, teacher_net, layer_map(net_cfg, teacher_net.config))
    if cfg.init:  # a previous student: its layers where they fit, the teacher's elsewhere
        start = TransformerNet.from_pretrained(resolve_model(cfg.init)[0])
        left = transfer_weights(net, start, layer_map(net_cfg, start.config))
        fresh = [n for n in fresh if n in left]
    net = net.to(dev).to(memory_format=layout).train()
    teacher = frozen(teacher_net, dev, layout)
    taps = SubpixelTaps(net, teacher) if plain_to_sub else None
    model = distributed.wrap(net)
    opt = torch.optim.Adam(param_groups(net, fresh, cfg.lr, cfg.lr / 5 if plain_to_sub else cfg.lr), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + cfg.lr_decay * s))
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and dtype == torch.float16)

    def step_fn(step: int) -> dict[str, float]:
        c = next(c_iter).to(dev, non_blocking=True).contiguous(memory_format=layout)
        w = random_style_weights(net_cfg.n_styles, c.shape[0], cfg.blend, picker).to(dev)
        with torch.no_grad(), autocast(dev, dtype):
            target = teacher(c, w).float()
        with autocast(dev, dtype):
            z = model(c, w, logits=True).float()
        loss, logged = copy_loss(z, target, cfg.saturation_weight, taps, w, dev, dtype)
        optimizer_step(loss, opt, scaler, sched)
        return {**logged, "total": float(loss.detach())}

    def get_state() -> dict[str, Any]:
        return {**net_run_state(net, opt, sched, contents, picker), "net_config": asdict(net_cfg),
                "teacher_sha256": teacher_sha}

    def set_state(state: dict[str, Any]) -> None:
        # fields a checkpoint predates (e.g. stem) had their defaults then
        saved = {**asdict(TransformerConfig()), **(state.get("net_config") or {})}
        same_net = json.dumps(saved, sort_keys=True) == json.dumps(asdict(net_cfg), sort_keys=True)
        if state.get("teacher_sha256") != teacher_sha or not same_net:
            raise ConfigError(f"the checkpoint in {out} is of another teacher or student size: "
                              "use another output folder")
        restore_net_run(state, net, opt, sched, contents, picker)

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=out)
    return distributed.train_and_save(
        loop, step_fn, get_state, set_state, progress, net, lambda history: {
            **asdict(cfg), "kind": net_cfg.kind, "method": "distill", "teacher_path": str(teacher_dir),
            "teacher_sha256": teacher_sha, "teacher_config": _layout(asdict(teacher_net.config)),
            "initialised_fresh": fresh, "device": str(dev), "precision": str(dtype).replace("torch.", ""),
            "torch": torch.__version__, "machine": platform.machine(), "final": history[-1] if history else {},
            "skipped_files": contents.skipped},
        f"distilling {teacher_dir.name} ({cfg.steps} steps)")


def _layout(config: dict[str, Any]) -> dict[str, Any]:
    """The layout fields of a net's config (what a distillation changes)."""
    return {k: v for k, v in config.items() if k in ("widths", "n_residual", "end_kernel", "subpixel", "stem")}


def _copy_norm_rows(student: GhiasiNet, teacher: GhiasiNet, rename: dict[str, str] | None) -> list[str]:
    """Copy the teacher's embedding-to-norm rows into the student's for every driven norm both share
    (same place after ``rename``; a narrower student norm takes the rows of the teacher's leading channels, as
    :func:`transfer_weights` slices the layers); returns the student norms left at their identity start."""
    def offsets(net: GhiasiNet) -> dict[str, tuple[int, int]]:
        names = {id(m): n for n, m in net.transformer.named_modules()}
        out, i = {}, 0
        for norm in net.conditioned:
            out[names[id(norm)]] = (i, norm.channels)
            i += 2 * norm.channels
        return out

    src, fresh = offsets(teacher), []
    with torch.no_grad():
        for name, (i, c) in offsets(student).items():
            t = src.get(_renamed(name, rename))
            if t is None or t[1] < c:
                fresh.append(name)
                continue
            (j, tc), w, b = t, teacher.to_params.weight, teacher.to_params.bias
            for k, at in ((i, j), (i + c, j + tc)):  # gamma rows, then beta rows
                student.to_params.weight[k : k + c] = w[at : at + c]
                student.to_params.bias[k : k + c] = b[at : at + c]
    return fresh


def distill_ghiasi(cfg: DistillConfig, device: str | torch.device = "cpu",
                   progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """A smaller or sub-pixel copy of a ghiasi net, learnt from its pictures of ``cfg.styles``' paintings.

    The paintings' statistics are computed once (augmented as in ghiasi training; ``bank.pt``, no
    Gram targets). Each step paints photo crops with random bank paintings (a ``blend`` share with a
    random mix of two paintings' embeddings, so blends copy too) by both nets; the student learns the
    teacher's pixels (L1). It starts from the teacher wherever the layers fit: the prediction head,
    the transformer layers and the embedding-to-norm rows of the norms both nets share.
    """
    from brushwork.training.data import list_images
    from brushwork.training.ghiasi import BANK, MIN_PAINTINGS, GhiasiTrainConfig, bank_key, build_bank

    dev = resolve_device(device)
    dtype = resolve_precision(cfg.precision, dev)
    teacher_dir, _ = _teacher_folder(cfg.teacher)
    teacher_net = GhiasiNet.from_pretrained(teacher_dir)
    teacher_sha = sha256_of(teacher_dir / WEIGHTS)
    t_cfg = teacher_net.config
    net_cfg = student_config(t_cfg, cfg)
    if not cfg.styles:
        raise ConfigError("a ghiasi teacher paints paintings: give their folders with --styles DIR")
    files = list_images(cfg.styles, cfg.exclude_styles)
    if len(files) < MIN_PAINTINGS:
        raise ConfigError(f"need at least {MIN_PAINTINGS} paintings in {', '.join(cfg.styles)}, found {len(files)}")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bank_cfg = GhiasiTrainConfig(content=[], styles=cfg.styles, out_dir=str(out), style_size=t_cfg.style_size,
                                 seed=cfg.seed)
    key = "stats:" + bank_key(files, bank_cfg)
    bank_path, skipped = out / BANK, []
    bank = torch.load(bank_path, map_location="cpu", weights_only=True) if bank_path.is_file() else None
    if bank is not None and bank.get("key") != key:
        raise ConfigError(f"{bank_path} was built from other paintings or settings: use another output folder")
    if bank is None:
        bank = {**build_bank(files, bank_cfg, dev, dtype, skipped, grams=False), "key": key}
        if distributed.is_main():
            torch.save(bank, bank_path.with_suffix(".tmp"))
            bank_path.with_suffix(".tmp").replace(bank_path)
    stats_bank, n_bank = bank["stats"], int(bank["stats"].shape[0])
    torch.manual_seed(cfg.seed)
    contents = RandomCrops(cfg.content, cfg.crop, cfg.batch, seed=distributed.rank_seed(cfg.seed), exclude=cfg.exclude)
    c_iter = iter(contents)
    picker = random.Random(distributed.rank_seed(cfg.seed) + 2)
    net = GhiasiNet(net_cfg)
    rename = layer_map(net_cfg.transformer(), t_cfg.transformer()) or None
    with torch.no_grad():
        net.stat_mean.copy_(teacher_net.stat_mean)
        net.stat_scale.copy_(teacher_net.stat_scale)
        net.head.load_state_dict(teacher_net.head.state_dict())
    fresh = transfer_weights(net.transformer, teacher_net.transformer, rename)
    fresh_norms = _copy_norm_rows(net, teacher_net, rename)
    if cfg.init:  # a previous student: its layers and norm rows where they fit, the teacher's elsewhere
        start_dir, start_kind = _teacher_folder(cfg.init)
        if start_kind != "ghiasi":
            raise ConfigError(f"--init {cfg.init}: a ghiasi teacher's student starts from a ghiasi model, "
                              f"not a {start_kind or 'unknown'} one")
        start = GhiasiNet.from_pretrained(start_dir)
        if start.config.embedding != net_cfg.embedding:
            raise ConfigError(f"--init {cfg.init}: its embedding has {start.config.embedding} numbers, the "
                              f"teacher's {net_cfg.embedding}")
        if start.config.hidden == net_cfg.hidden:
            with torch.no_grad():
                net.head.load_state_dict(start.head.state_dict())
        start_map = layer_map(net_cfg.transformer(), start.config.transformer()) or None
        left = transfer_weights(net.transformer, start.transformer, start_map)
        fresh = [n for n in fresh if n in left]
        left_norms = _copy_norm_rows(net, start, start_map)
        fresh_norms = [n for n in fresh_norms if n in left_norms]
    layout = norm_net_memory_format(dev)
    net = net.to(dev).to(memory_format=layout).train()
    teacher = frozen(teacher_net, dev, layout)
    plain_to_sub = net_cfg.subpixel and not t_cfg.subpixel
    taps = SubpixelTaps(net.transformer, teacher.transformer) if plain_to_sub else None
    model = distributed.wrap(net)
    new_rows = ["to_params.weight", "to_params.bias"] if fresh_norms else []
    opt = torch.optim.Adam(param_groups(net, [f"transformer.{n}" for n in fresh] + new_rows, cfg.lr,
                                        cfg.lr / 5 if plain_to_sub else cfg.lr), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + cfg.lr_decay * s))
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and dtype == torch.float16)

    def embeddings(n: GhiasiNet, a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return t * n.embed(a) + (1 - t) * n.embed(b)

    def step_fn(step: int) -> dict[str, float]:
        c = next(c_iter).to(dev, non_blocking=True).contiguous(memory_format=layout)
        k = c.shape[0]
        ia = torch.tensor([picker.randrange(n_bank) for _ in range(k)])
        ib = torch.tensor([picker.randrange(n_bank) for _ in range(k)])
        t = torch.tensor([[picker.random() if picker.random() < cfg.blend else 1.0] for _ in range(k)], device=dev)
        a, b = stats_bank[ia].to(dev), stats_bank[ib].to(dev)
        with torch.no_grad(), autocast(dev, dtype):
            target = teacher(c, embeddings(teacher_net, a, b, t)).float()
        with autocast(dev, dtype):
            e = embeddings(net, a, b, t)
            z = model(c, e, logits=True).float()
        loss, logged = copy_loss(z, target, cfg.saturation_weight, taps, net.norm_params(e), dev, dtype)
        optimizer_step(loss, opt, scaler, sched)
        return {**logged, "total": float(loss.detach())}

    def get_state() -> dict[str, Any]:
        return {**net_run_state(net, opt, sched, contents, picker), "net_config": asdict(net_cfg),
                "teacher_sha256": teacher_sha, "bank_key": key}

    def set_state(state: dict[str, Any]) -> None:
        same_net = json.dumps(state.get("net_config"), sort_keys=True) == json.dumps(asdict(net_cfg), sort_keys=True)
        if state.get("teacher_sha256") != teacher_sha or not same_net or state.get("bank_key") != key:
            raise ConfigError(f"the checkpoint in {out} is of another teacher, student size or painting set: "
                              "use another output folder")
        restore_net_run(state, net, opt, sched, contents, picker)

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=out)
    return distributed.train_and_save(
        loop, step_fn, get_state, set_state, progress, net, lambda history: {
            **asdict(cfg), "kind": "ghiasi", "method": "distill", "teacher_path": str(teacher_dir),
            "teacher_sha256": teacher_sha, "teacher_config": _layout(asdict(t_cfg)), "paintings": len(files),
            "bank_entries": n_bank, "initialised_fresh": fresh, "norm_rows_fresh": fresh_norms, "device": str(dev),
            "precision": str(dtype).replace("torch.", ""), "torch": torch.__version__,
            "machine": platform.machine(), "final": history[-1] if history else {},
            "skipped_files": contents.skipped + skipped},
        f"distilling {teacher_dir.name} ({cfg.steps} steps)")
