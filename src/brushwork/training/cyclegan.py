"""Training a CycleGAN on two unpaired collections: photos (A) and paintings (B) (Zhu et al. 2017).

The paper's recipe is the default: least-squares GAN loss (Mao et al. 2017: real -> 1, fake -> 0),
cycle weight 10 on ``|F(G(a)) - a| + |G(F(b)) - b|``, identity ``|G(b) - b| + |F(a) - a|`` at 0.5 of
it (keeps a photo's colours from drifting early), discriminators fed from a pool of the last 50
fakes (Shrivastava et al. 2017: they keep seeing older generators, which damps oscillation),
Adam 2e-4 with beta1 0.5, a constant rate for the first half of the steps then a linear decay to 0,
batch 1, random crops and flips. Everything a resume needs (four nets, two optimizers, both pools,
both crop streams, the pool and torch RNGs) is in the checkpoint; the model folder ``RUN/model`` is
rewritten with each checkpoint, so the newest generator can be used while training goes on.

``ema`` keeps an exponential moving average of the generators' weights (Yazici et al. 2019, "The
Unusual Effectiveness of Averaging in GAN Training"): a GAN's generator circles around a good point at
a constant learning rate, and the average sits nearer it. The samples and the model folder then hold
the average; the raw generators keep training.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from brushwork.errors import ConfigError, ImageError
from brushwork.image.convert import from_tensor, to_tensor
from brushwork.image.io import fit_size, load_image, resize
from brushwork.methods.cyclegan import KIND, CycleGANConfig, CycleGANNet, PatchDiscriminator, default_depth
from brushwork.plot import plot_losses
from brushwork.runtime import autocast, resolve_device, resolve_precision
from brushwork.training import distributed
from brushwork.training.data import RandomCrops, list_images
from brushwork.training.loop import CHECKPOINT, LoopConfig, load_checkpoint, optimizer_step, read_log

METHOD = "cyclegan"
SAMPLES = "samples"
#: what differs per rank under DDP: each rank's crop streams, pools and RNGs
PER_RANK = ("photos", "paintings", "pools", "torch_rng")
PLOT_KEYS = (("g_total", "black"), ("g_gan", "tab:red"), ("cycle", "tab:blue"), ("identity", "tab:green"),
             ("d_a", "tab:orange"), ("d_b", "tab:purple"))


@dataclass
class CycleGANTrainConfig:
    """A run. ``crop`` 256, ``ngf`` 64, 9 blocks and ``batch`` 1 are the paper's; a CPU run takes 128 px,
    ``ngf`` 16-32 and 6 blocks. ``decay_start`` (default: half of ``steps``) is where the linear lr
    decay to 0 begins; resuming with more ``steps`` moves it, as a longer paper schedule would."""

    photos: list[str]
    paintings: list[str]
    out_dir: str
    generator: str = "resnet"
    ngf: int = 64
    n_blocks: int = 9
    depth: int | None = None  # unet: default from the crop (8 at 256 px)
    ndf: int = 64
    upsample: str = "resize"
    name: str = "painting"  # what G produces (the model's style name, e.g. monet)
    steps: int = 200000
    decay_start: int | None = None
    batch: int = 1
    crop: int = 256
    scale: tuple[float, float] = (0.5, 1.0)
    lr: float = 2e-4
    beta1: float = 0.5
    cycle_weight: float = 10.0
    identity: float = 0.5  # of the cycle weight
    pool_size: int = 50
    seed: int = 0
    precision: str = "auto"
    checkpoint_every: int = 200
    log_every: int = 10
    sample_every: int = 500
    exclude: list[str] = field(default_factory=list)  # photo file-name globs held out (the samples use them)
    exclude_paintings: list[str] = field(default_factory=list)
    command: str = ""
    init: str | None = None  # a trained CycleGAN (folder or shipped name) whose generators start this run
    d_warmup: int = 200  # with ``init``: first steps train only the fresh discriminators
    ema: float = 0.0  # decay of the generators' weight average (e.g. 0.999); 0 = the raw generators ship

    def net_config(self) -> CycleGANConfig:
        return CycleGANConfig(generator=self.generator, ngf=self.ngf, n_blocks=self.n_blocks,
                              depth=self.depth or default_depth(self.crop), upsample=self.upsample,
                              names=(self.name, "photo"))

    def validate(self) -> CycleGANConfig:
        if self.steps < 1 or self.batch < 1:
            raise ConfigError(f"need steps >= 1 and batch >= 1, got {self.steps} and {self.batch}")
        for name in ("lr", "cycle_weight", "identity"):
            v = getattr(self, name)
            if not v >= 0 or v == float("inf") or (name == "lr" and v == 0):
                raise ConfigError(f"{name.replace('_', '-')} must be a number {'>' if name == 'lr' else '>='} 0, "
                                  f"got {v}")
        if not 0 <= self.beta1 < 1 or self.pool_size < 0 or self.ndf < 1:
            raise ConfigError(f"need beta1 in [0, 1), pool size >= 0 and ndf >= 1, got {self.beta1}, "
                              f"{self.pool_size}, {self.ndf}")
        if self.decay_start is not None and not 0 <= self.decay_start <= self.steps:
            raise ConfigError(f"decay start must be between 0 and steps ({self.steps}), got {self.decay_start}")
        if self.d_warmup < 0:
            raise ConfigError(f"d-warmup must be >= 0, got {self.d_warmup}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1) (0 = off, e.g. 0.999), got {self.ema}")
        if self.name == "photo":
            raise ConfigError("the painting domain needs a name other than 'photo' (the reverse direction's)")
        net = self.net_config()
        if self.crop < 64 or self.crop % net.multiple:
            raise ConfigError(f"crop must be at least 64 px and a multiple of {net.multiple} for the {self.generator}"
                              f" generator{' of depth ' + str(net.depth) if self.generator == 'unet' else ''}, "
                              f"got {self.crop}")
        return net


class ImagePool:
    """The last ``size`` fakes (Shrivastava et al. 2017): each new fake is returned as is, or, half the
    time once the pool is full, swapped for a random stored one that the discriminator sees instead."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif self.rng.random() < 0.5:
                k = self.rng.randrange(self.size)
                out.append(self.images[k].to(img.device))
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state(self) -> dict[str, Any]:
        return {"images": [t.cpu() for t in self.images], "rng": self.rng.getstate()}

    def load_state(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [t.to(device) for t in state["images"]]
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))


class _Generators(nn.Module):
    """Both generators in one module, so one DDP forward covers the four passes of a step."""

    def __init__(self, net: CycleGANNet) -> None:
        super().__init__()
        self.g_ab, self.g_ba = net.g_ab, net.g_ba

    def forward(self, a: torch.Tensor, b: torch.Tensor, identity: bool) -> dict[str, torch.Tensor]:
        fake_b, fake_a = self.g_ab(a), self.g_ba(b)
        out = {"fake_b": fake_b, "fake_a": fake_a, "rec_a": self.g_ba(fake_b), "rec_b": self.g_ab(fake_a)}
        if identity:
            out["idt_b"], out["idt_a"] = self.g_ab(b), self.g_ba(a)
        return out


class _Discriminators(nn.Module):
    """D_A (judges photos) and D_B (judges paintings); real and fake go through as one batch (instance
    norm keeps them independent), so one DDP forward serves a discriminator step."""

    def __init__(self, ndf: int) -> None:
        super().__init__()
        self.d_a, self.d_b = PatchDiscriminator(ndf), PatchDiscriminator(ndf)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.d_a(a), self.d_b(b)


def _lsgan(pred: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(pred.float(), torch.full_like(pred, target, dtype=torch.float32))


def _check_collection(files: list[Path], what: str, crop: int) -> None:
    """A collection needs two images or more, each at least ``crop`` px on its short side (read from headers)."""
    if len(files) < 2:
        raise ConfigError(f"the {what} folder holds {len(files)} image ({files[0].name}): a CycleGAN learns from a "
                          "collection (tens to hundreds of images)")
    small = []
    for path in files:
        try:
            with Image.open(path) as im:
                size = im.size
        except (OSError, ValueError):
            continue  # unreadable: RandomCrops skips and counts it
        if min(size) < crop:
            small.append((path, size))
    if small:
        path, (w, h) = small[0]
        raise ImageError(f"{len(small)} {what} smaller than the {crop} px crop (e.g. {path.name}, {w}x{h}): "
                         "use a smaller --crop or remove them")


def held_out(folders: list[str], exclude: list[str]) -> list[Path]:
    """The files of ``folders`` that the ``exclude`` globs keep out of training."""
    if not exclude:
        return []
    kept = set(list_images(folders, exclude))
    return [p for p in list_images(folders) if p not in kept]


def _sample_sheet(net: CycleGANNet, photos: list[Path], paintings: list[Path], size: int, device: torch.device,
                  dtype: torch.dtype) -> Image.Image:
    """Rows of photo | G(photo) | F(G(photo)), then painting | F(painting) | G(F(painting)), at ``size`` px."""
    rows = []
    for forward, files in ((True, photos), (False, paintings)):
        for path in files:
            img = load_image(path)
            w, h = fit_size(img.size, size, allow_upscale=True)
            m = net.config.multiple
            x = to_tensor(resize(img, (max(m, w // m * m), max(m, h // m * m))), device)
            first, second = (net.g_ab, net.g_ba) if forward else (net.g_ba, net.g_ab)
            with torch.no_grad(), autocast(device, dtype):
                y = first(x * 2 - 1)
                z = second(y)
            rows.append([from_tensor(t.float().add(1).div(2).clamp(0, 1)) for t in (x * 2 - 1, y, z)])
    cw = max(r[0].size[0] for r in rows)
    ch = max(r[0].size[1] for r in rows)
    sheet = Image.new("RGB", (cw * 3, ch * len(rows)), "white")
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            sheet.paste(im, (j * cw, i * ch))
    return sheet


def _check_run_folder(out: Path, net_cfg: CycleGANConfig) -> None:
    """A run folder of another method or another generator is refused before anything trains."""
    state = load_checkpoint(out / CHECKPOINT)
    if state is None:
        return
    if state.get("method") != METHOD:
        raise ConfigError(f"{out} holds a run of another method ({state.get('method', 'not cyclegan')}): "
                          "use another output folder")
    def plain(cfg: dict[str, Any]) -> dict[str, Any]:  # tuples come back from a checkpoint as lists or tuples
        return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in cfg.items()}

    saved, now = plain(state.get("net_config", {})), plain(asdict(net_cfg))
    if saved != now:
        diff = ", ".join(f"{k} {saved.get(k)} (asked {now[k]})" for k in now if saved.get(k) != now[k])
        raise ConfigError(f"the checkpoint in {out} is of another CycleGAN ({diff}): use another output folder")


def _load_init(name: str, net_cfg: CycleGANConfig) -> tuple[CycleGANNet, dict[str, Any]]:
    """The generators ``--init`` names, checked against this run's layout, and what to record of them."""
    from brushwork.registry import resolve_model, shipped_models

    shipped = [m.path for m in shipped_models() if m.name == name and m.kind == KIND]
    folder = shipped[0] if shipped else resolve_model(name)[0]
    init = CycleGANNet.from_pretrained(folder)
    keys = ("generator", "ngf", "n_blocks", "depth", "upsample")
    theirs, ours = ({k: getattr(c, k) for k in keys} for c in (init.config, net_cfg))
    if init.config.generator == "resnet":  # a resnet's depth is unused
        theirs.pop("depth"), ours.pop("depth")
    if theirs != ours:
        raise ConfigError(f"--init {name}: its generators are {theirs}, this run asks for {ours}")
    card = Path(folder) / "MODEL.json"
    done = json.loads(card.read_text()).get("steps") if card.is_file() else None
    training = Path(folder) / "training.json"
    if done is None and training.is_file():
        done = json.loads(training.read_text()).get("steps_done")
    weights = Path(folder) / "model.safetensors"
    return init, {"model": str(folder), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(), "steps": done}


def train_cyclegan(cfg: CycleGANTrainConfig, device: str | torch.device = "cpu",
                   progress: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
    """Train (or resume) a CycleGAN in ``cfg.out_dir``; returns the model folder (both generators)."""
    net_cfg = cfg.validate()
    out = Path(cfg.out_dir)
    dev = resolve_device(device)
    torch.backends.cudnn.benchmark = dev.type == "cuda"
    dtype = resolve_precision(cfg.precision, dev)
    photo_files = list_images(cfg.photos, cfg.exclude)
    painting_files = list_images(cfg.paintings, cfg.exclude_paintings)
    _check_collection(photo_files, "photos", cfg.crop)
    _check_collection(painting_files, "paintings", cfg.crop)
    init_net, init_info = _load_init(cfg.init, net_cfg) if cfg.init else (None, None)  # fails before any work
    _check_run_folder(out, net_cfg)
    sample_photos = held_out(cfg.photos, cfg.exclude)[:4] or photo_files[:2]
    sample_paintings = held_out(cfg.paintings, cfg.exclude_paintings)[:2] or painting_files[:1]

    torch.manual_seed(cfg.seed)
    seed = distributed.rank_seed(cfg.seed)
    photos = RandomCrops(cfg.photos, cfg.crop, cfg.batch, seed=seed, scale=cfg.scale, exclude=cfg.exclude)
    paintings = RandomCrops(cfg.paintings, cfg.crop, cfg.batch, seed=seed + 1, scale=cfg.scale,
                            exclude=cfg.exclude_paintings)
    a_iter, b_iter = iter(photos), iter(paintings)
    pools = (ImagePool(cfg.pool_size, seed + 2), ImagePool(cfg.pool_size, seed + 3))
    net = CycleGANNet(net_cfg).to(dev).train()
    gens = _Generators(net)
    discs = _Discriminators(cfg.ndf).to(dev).train()
    for m in (*gens.modules(), *discs.modules()):  # the paper's init: N(0, 0.02) weights
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if init_net is not None:  # a warm start: trained generators, fresh discriminators (a resume overrides both)
        net.load_state_dict(init_net.state_dict())
    warmup = cfg.d_warmup if init_net is not None else 0
    # the weight average, if any, is what the samples and the model folder show
    ema = (torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema),
                                               use_buffers=True) if cfg.ema else None)
    shown = ema.module if ema is not None else net
    g_model, d_model = distributed.wrap(gens), distributed.wrap(discs)
    betas = (cfg.beta1, 0.999)
    opt_g = torch.optim.Adam(gens.parameters(), lr=cfg.lr, betas=betas)
    opt_d = torch.optim.Adam(discs.parameters(), lr=cfg.lr, betas=betas)
    decay_start = cfg.steps // 2 if cfg.decay_start is None else cfg.decay_start

    def lr_factor(s: int) -> float:  # constant, then linear to 0 at the last step
        return 1.0 - max(0, s - decay_start) / (cfg.steps - decay_start + 1)

    sched_g = torch.optim.lr_scheduler.LambdaLR(opt_g, lr_factor)
    sched_d = torch.optim.lr_scheduler.LambdaLR(opt_d, lr_factor)
    scaler = torch.amp.GradScaler(dev.type, enabled=dev.type == "cuda" and dtype == torch.float16)
    identity = cfg.identity > 0
    lam_c, lam_i = cfg.cycle_weight, cfg.cycle_weight * cfg.identity

    def step_fn(step: int) -> dict[str, float]:
        a = next(a_iter).to(dev, non_blocking=True) * 2 - 1
        b = next(b_iter).to(dev, non_blocking=True) * 2 - 1
        discs.requires_grad_(False)  # the generators' step: D's weights get no gradient
        warming = step <= warmup  # fresh discriminators judge first: their early verdicts would only mislead G
        with autocast(dev, dtype), torch.set_grad_enabled(not warming):
            o = g_model(a, b, identity)
            pred_a, pred_b = discs(o["fake_a"], o["fake_b"])
        o = {k: v.float() for k, v in o.items()}
        gan = _lsgan(pred_b, 1.0) + _lsgan(pred_a, 1.0)
        cycle = F.l1_loss(o["rec_a"], a) + F.l1_loss(o["rec_b"], b)
        idt = F.l1_loss(o["idt_b"], b) + F.l1_loss(o["idt_a"], a) if identity else torch.zeros((), device=dev)
        loss_g = gan + lam_c * cycle + lam_i * idt
        if warming:
            with warnings.catch_warnings():  # the schedule keeps time with the steps; G's optimizer waits
                warnings.simplefilter("ignore", UserWarning)
                sched_g.step()
        else:
            optimizer_step(loss_g, opt_g, scaler, sched_g)
            if ema is not None:
                ema.update_parameters(net)
        discs.requires_grad_(True)
        fake_a, fake_b = pools[0].query(o["fake_a"]), pools[1].query(o["fake_b"])
        with autocast(dev, dtype):
            pa, pb = d_model(torch.cat([a, fake_a]), torch.cat([b, fake_b]))
        n = a.shape[0]
        d_a = 0.5 * (_lsgan(pa[:n], 1.0) + _lsgan(pa[n:], 0.0))
        d_b = 0.5 * (_lsgan(pb[:n], 1.0) + _lsgan(pb[n:], 0.0))
        optimizer_step(d_a + d_b, opt_d, scaler, sched_d)
        if distributed.is_main() and cfg.sample_every and step % cfg.sample_every == 0:
            (out / SAMPLES).mkdir(parents=True, exist_ok=True)
            _sample_sheet(shown, sample_photos, sample_paintings, 2 * cfg.crop, dev, dtype).save(
                out / SAMPLES / f"step_{step:07d}.png")
        return {"g_gan": float(gan.detach()), "cycle": float(cycle.detach()), "identity": float(idt.detach()),
                "d_a": float(d_a.detach()), "d_b": float(d_b.detach()), "g_total": float(loss_g.detach()),
                "lr": sched_g.get_last_lr()[0]}

    meta = {"training": {**asdict(cfg), "device": str(dev), "precision": str(dtype).replace("torch.", ""),
                         "torch": torch.__version__, "machine": platform.machine(), "init": init_info,
                         "photos_used": len(photo_files), "paintings_used": len(painting_files),
                         "held_out_photos": [p.name for p in held_out(cfg.photos, cfg.exclude)],
                         "held_out_paintings": [p.name for p in held_out(cfg.paintings, cfg.exclude_paintings)]}}

    def save_model(step: int) -> Path:
        history = read_log(out)
        info = {**meta["training"], "steps_done": step, "final": history[-1] if history else {},
                "skipped_files": photos.skipped + paintings.skipped}
        folder = shown.save_pretrained(out / "model", meta={"training": info})
        (folder / "training.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
        return folder

    def get_state() -> dict[str, Any]:
        state = {"method": METHOD, "net_config": asdict(net_cfg), "gens": gens.state_dict(),
                 "discs": discs.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                 "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(), "photos": photos.state(),
                 "paintings": paintings.state(), "pools": [p.state() for p in pools],
                 "torch_rng": torch.get_rng_state()}
        if ema is not None:
            state["ema"] = ema.state_dict()
        return state

    def set_state(state: dict[str, Any]) -> None:
        gens.load_state_dict(state["gens"])
        discs.load_state_dict(state["discs"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        for sched, key in ((sched_g, "sched_g"), (sched_d, "sched_d")):
            sched.load_state_dict(state[key])
        photos.load_state(state["photos"])
        paintings.load_state(state["paintings"])
        for pool, s in zip(pools, state["pools"]):
            pool.load_state(s, dev)
        torch.set_rng_state(state["torch_rng"])
        if ema is not None and "ema" in state:  # a run resumed with --ema for the first time starts its average here
            ema.load_state_dict(state["ema"])

    loop = LoopConfig(steps=cfg.steps, checkpoint_every=cfg.checkpoint_every, log_every=cfg.log_every, out_dir=out)

    def state_and_model() -> dict[str, Any]:  # the model folder and the plot follow every checkpoint
        state = get_state()
        if distributed.is_main():
            save_model(int(sched_g.last_epoch))
            if read_log(out):
                plot_losses(read_log(out), out / "losses.png", keys=PLOT_KEYS,
                            title=f"CycleGAN photo -> {cfg.name} ({int(sched_g.last_epoch)} of {cfg.steps} steps)")
        return state

    distributed.run_training_loop(loop, step_fn, state_and_model, set_state, progress, per_rank=PER_RANK)
    if not distributed.is_main():
        distributed.barrier()
        return out / "model"
    distributed.barrier()
    return out / "model"
