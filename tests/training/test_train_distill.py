"""``brushwork train distill``: weight transfer, style sampling, a real (tiny) run, resume and errors."""

from __future__ import annotations

import json
import random
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.cli.main import build_parser, main
from brushwork.cli.train import DISTILL_DEFAULTS
from brushwork.errors import ConfigError
from brushwork.methods.feedforward import TransformerConfig, TransformerNet, layer_map
from brushwork.training.distill import (
    DistillConfig,
    distill_feedforward,
    random_style_weights,
    student_config,
    transfer_weights,
)

NAMES = ("waves", "dots", "stripes")


def _teacher_net(seed: int = 0) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=2, end_kernel=9, n_styles=3,
                                           style_names=NAMES))
    with torch.no_grad():  # distinct per-style rows, as a trained CIN net has
        for m in net.modules():
            if hasattr(m, "gamma"):
                m.gamma.add_(0.3 * torch.randn_like(m.gamma))
                m.beta.add_(0.3 * torch.randn_like(m.beta))
    return net.eval()


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    return _teacher_net().save_pretrained(tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture(scope="module")
def content(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(4):  # smooth gradients with a few blocks: photo-like, unlike white noise
        y, x = np.mgrid[0:80, 0:96] / 96.0
        img = np.stack([x, y, (x + y) / 2], -1) * rng.uniform(0.5, 1, 3)
        img[rng.integers(0, 60):][:20, rng.integers(0, 70):][:, :25] = rng.random(3)
        Image.fromarray((img * 255).astype(np.uint8)).save(root / f"photo_{i}.png")
    return root


def _cfg(teacher: Path, content: Path, out: Path, steps: int, **kw) -> DistillConfig:
    return DistillConfig(teacher=str(teacher), content=[str(content)], out_dir=str(out), steps=steps, batch=2,
                         crop=64, checkpoint_every=5, log_every=1, precision="fp32", **kw)


def test_same_size_student_is_an_exact_copy():
    t = _teacher_net()
    s = TransformerNet(t.config).eval()
    assert transfer_weights(s, t) == []
    x, w = torch.rand(1, 3, 32, 40), torch.tensor([[0.3, 0.7, 0.0]])
    assert torch.equal(s(x, w), t(x, w))


def test_smaller_kernels_take_the_centre_and_new_layers_start_fresh():
    t = _teacher_net()
    small = TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=3, end_kernel=5, n_styles=3,
                                             style_names=NAMES))
    fresh = transfer_weights(small, t)
    assert torch.equal(small.down[0].conv.weight, t.down[0].conv.weight[:, :, 2:7, 2:7])
    assert torch.equal(small.out[1].weight, t.out[1].weight[:, :, 2:7, 2:7])
    assert torch.equal(small.res[1].b.conv.weight, t.res[1].b.conv.weight)
    assert fresh and all(name.startswith("res.2.") for name in fresh)  # the block the teacher lacks
    wide = TransformerNet(TransformerConfig(widths=(6, 8, 8), n_styles=3, style_names=NAMES))
    assert "down.0.conv.weight" in transfer_weights(wide, t)


def test_a_narrower_student_takes_the_teachers_leading_channels():
    t = _teacher_net()
    narrow = TransformerNet(TransformerConfig(widths=(4, 6, 6), n_residual=2, end_kernel=9, n_styles=3,
                                              style_names=NAMES))
    assert transfer_weights(narrow, t) == []
    assert torch.equal(narrow.down[1].conv.weight, t.down[1].conv.weight[:6])  # fewer outputs
    assert torch.equal(narrow.down[2].conv.weight, t.down[2].conv.weight[:6, :6])  # fewer of both
    assert torch.equal(narrow.up[1].conv.weight, t.up[1].conv.weight[:, :6])  # fewer inputs
    assert torch.equal(narrow.res[0].a.norm.gamma, t.res[0].a.norm.gamma[..., :6])


def test_subpixel_student_copies_the_teachers_middle_and_runs_nothing_at_full_resolution():
    t = _teacher_net()
    s = TransformerNet(TransformerConfig(widths=(6, 8, 8), n_residual=2, end_kernel=3, n_styles=3,
                                         style_names=NAMES, subpixel=True)).eval()
    fresh = transfer_weights(s, t, layer_map(s.config, t.config))
    assert torch.equal(s.down[1].conv.weight, t.down[2].conv.weight)  # the 1/2 -> 1/4 stage
    assert torch.equal(s.res[1].b.norm.gamma, t.res[1].b.norm.gamma) and torch.equal(s.up[0].conv.weight,
                                                                                      t.up[0].conv.weight)
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in fresh} == {"down.0", "up.1", "out.1"}
    sizes = []
    hooks = [m.register_forward_hook(lambda m, i, o: sizes.append(o.shape[-1])) for m in s.modules()
             if isinstance(m, torch.nn.Conv2d)]
    x = torch.rand(2, 3, 36, 52)
    y = s(x, torch.eye(3)[:2])
    for h in hooks:
        h.remove()
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert max(sizes) == 26  # every convolution runs at half width (52 / 2) or less
    cfg = student_config(t.config, DistillConfig(teacher="x", content=[], out_dir="o", subpixel=True))
    assert cfg.subpixel and cfg.widths == t.config.widths


def test_a_two_layer_stem_starts_from_a_one_layer_student():
    t = TransformerNet(TransformerConfig(widths=(4, 8, 12), n_styles=3, style_names=NAMES))
    one = TransformerNet(TransformerConfig(widths=(6, 8, 12), n_residual=2, end_kernel=3, n_styles=3,
                                           style_names=NAMES, subpixel=True)).eval()
    two = TransformerNet(TransformerConfig(widths=(6, 8, 12), n_residual=2, end_kernel=3, n_styles=3,
                                           style_names=NAMES, subpixel=True, stem=2)).eval()
    assert layer_map(two.config, t.config) == {} and layer_map(two.config, one.config) == {"down.2.": "down.1."}
    fresh = transfer_weights(two, one, layer_map(two.config, one.config))
    assert torch.equal(two.down[2].conv.weight, one.down[1].conv.weight)
    assert torch.equal(two.down[0].conv.weight, one.down[0].conv.weight)
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in fresh} == {"down.1"}  # the new 1/2-res layer
    assert two(torch.rand(1, 3, 32, 40), torch.eye(3)[:1]).shape == (1, 3, 32, 40)
    with pytest.raises(ConfigError, match="stem"):
        TransformerConfig(stem=2)


def test_student_config_keeps_styles_and_changes_only_what_is_asked():
    t = _teacher_net().config
    s = student_config(t, DistillConfig(teacher="x", content=[], out_dir="o", end_kernel=5))
    assert (s.end_kernel, s.widths, s.n_residual, s.style_names) == (5, t.widths, t.n_residual, NAMES)


def test_random_style_weights_are_convex_one_hot_or_pairs():
    rng = random.Random(0)
    w = random_style_weights(3, 200, 0.5, rng)
    assert torch.allclose(w.sum(1), torch.ones(200)) and (w >= 0).all()
    nonzero = (w > 0).sum(1)
    assert set(nonzero.tolist()) <= {1, 2} and 60 < int((nonzero == 2).sum()) < 140
    assert ((random_style_weights(3, 50, 0.0, rng) > 0).sum(1) == 1).all()
    assert torch.equal(random_style_weights(1, 4, 1.0, rng), torch.ones(4, 1))


def _gap(student: TransformerNet, teacher: TransformerNet, content: Path) -> float:
    """Mean |student - teacher| over the photos and every style."""
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).permute(2, 0, 1)
                     for p in sorted(content.glob("*.png"))])
    with torch.no_grad():
        return float(sum((student(x, w[None]) - teacher(x, w[None])).abs().mean() for w in torch.eye(3)) / 3)


def test_distill_learns_the_teacher_and_resumes(teacher, content, tmp_path):
    model = distill_feedforward(_cfg(teacher, content, tmp_path / "a", 100, end_kernel=3, lr=3e-3))
    t = TransformerNet.from_pretrained(teacher)
    start = TransformerNet(student_config(t.config, _cfg(teacher, content, tmp_path, 1, end_kernel=3))).eval()
    transfer_weights(start, t)
    before, after = _gap(start, t, content), _gap(TransformerNet.from_pretrained(model), t, content)
    assert after < 0.8 * before, (before, after)  # the centre-cropped 3x3 ends learned back towards the 9x9 ones
    student = TransformerNet.from_pretrained(model)
    assert student.config.end_kernel == 3 and student.style_names == NAMES and student.config.kind == "cin"
    meta = json.loads((model / "training.json").read_text())
    assert meta["method"] == "distill" and meta["teacher_config"]["end_kernel"] == 9
    assert len(meta["teacher_sha256"]) == 64
    assert (tmp_path / "a" / "losses.png").is_file()
    # killed after its step-5 checkpoint, resumed to step 10: the log continues without a gap
    distill_feedforward(_cfg(teacher, content, tmp_path / "b", 5, end_kernel=3))
    distill_feedforward(_cfg(teacher, content, tmp_path / "b", 10, end_kernel=3))
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))
    with pytest.raises(ConfigError, match="another teacher or student size"):
        distill_feedforward(_cfg(teacher, content, tmp_path / "b", 12, end_kernel=5))


def test_bad_settings_are_one_line_errors(teacher, content, tmp_path):
    with pytest.raises(ConfigError, match="blend"):
        distill_feedforward(_cfg(teacher, content, tmp_path / "c", 2, blend=1.5))
    with pytest.raises(ConfigError, match="end kernel"):
        distill_feedforward(_cfg(teacher, content, tmp_path / "c", 2, end_kernel=4))
    with pytest.raises(ConfigError, match="stem"):  # not silently the teacher's
        distill_feedforward(_cfg(teacher, content, tmp_path / "c", 2, subpixel=True, stem=0))
    with pytest.raises(ConfigError, match="unknown model"):
        distill_feedforward(_cfg("no_such_model", content, tmp_path / "c", 2))


def test_cli_distill_and_its_defaults(teacher, content, tmp_path, capsys):
    defaults = {f.name: f.default for f in fields(DistillConfig)}
    assert all(defaults[k] == v for k, v in DISTILL_DEFAULTS.items())
    args = build_parser().parse_args(["train", "distill", "--teacher", "cin", "--content", "c", "-o", "o"])
    assert (args.widths, args.residual, args.end_kernel, args.blend, args.subpixel) == (
        None, None, None, defaults["blend"], False)
    assert main(["train", "distill", "--teacher", str(teacher), "--content", str(content), "-o", str(tmp_path / "d"),
                 "--steps", "2", "--batch", "1", "--crop", "64", "--residual", "1", "--subpixel", "-q"]) == 0
    assert "distilled model ->" in capsys.readouterr().out
    made = TransformerNet.from_pretrained(tmp_path / "d" / "model").config
    assert made.n_residual == 1 and made.subpixel
    logged = json.loads((tmp_path / "d" / "log.jsonl").read_text().splitlines()[-1])
    assert {"first_layer", "last_layers"} <= set(logged)  # the layer-wise targets of a plain -> sub-pixel copy
    assert main(["train", "distill", "--teacher", "starry_nite", "--content", str(content), "-o",
                 str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error: unknown model 'starry_nite'") and "\n" not in err


@pytest.fixture(scope="module")
def ghiasi_teacher(tmp_path_factory) -> Path:
    from brushwork.methods.ghiasi import GhiasiConfig, GhiasiNet

    torch.manual_seed(1)
    net = GhiasiNet(GhiasiConfig(widths=(4, 8, 8), n_residual=1, end_kernel=3, embedding=6, hidden=16,
                                 style_size=64))
    with torch.no_grad():  # paintings should matter: a non-trivial embedding-to-norm map, on whitened statistics
        net.to_params.weight.normal_(0, 0.3)
        net.stat_scale.fill_(50.0)
    return net.eval().save_pretrained(tmp_path_factory.mktemp("gh_teacher") / "model")


def _ghiasi_gap(model: Path, teacher: Path, content: Path, bank: Path) -> float:
    from brushwork.methods.ghiasi import GhiasiNet

    s, t = GhiasiNet.from_pretrained(model), GhiasiNet.from_pretrained(teacher)
    stats = torch.load(bank, weights_only=True)["stats"][:3]
    x = torch.stack([torch.from_numpy(np.asarray(Image.open(p), dtype=np.float32) / 255).permute(2, 0, 1)
                     for p in sorted(content.glob("*.png"))[:3]])
    with torch.no_grad():
        return float((s(x, s.embed(stats)) - t(x, t.embed(stats))).abs().mean())


def test_distill_a_ghiasi_teacher_into_a_subpixel_student(ghiasi_teacher, teacher, content, tmp_path):
    from media import image_folder

    from brushwork.methods.ghiasi import GhiasiNet

    paintings = image_folder(tmp_path / "paintings", 3, 1, True)
    kw = {"styles": [str(paintings)], "subpixel": True, "widths": (6, 8, 8), "lr": 3e-3}
    first = distill_feedforward(_cfg(ghiasi_teacher, content, tmp_path / "a", 1, **kw))
    before = _ghiasi_gap(first, ghiasi_teacher, content, tmp_path / "a" / "bank.pt")
    model = distill_feedforward(_cfg(ghiasi_teacher, content, tmp_path / "a", 80, **kw))  # resumes at step 1
    after = _ghiasi_gap(model, ghiasi_teacher, content, tmp_path / "a" / "bank.pt")
    assert after < 0.8 * before, (before, after)
    student = GhiasiNet.from_pretrained(model)
    assert student.config.subpixel and student.config.widths == (6, 8, 8)
    meta = json.loads((model / "training.json").read_text())
    assert meta["method"] == "distill" and meta["kind"] == "ghiasi"
    assert {n.split(".")[0] for n in meta["norm_rows_fresh"]} <= {"down", "up"}  # the rest copied
    assert len([json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]) == 80
    with pytest.raises(ConfigError, match="--styles"):
        distill_feedforward(_cfg(ghiasi_teacher, content, tmp_path / "b", 2))
    # --init: a new run starts from that student, not from the teacher's layers and fresh ends
    again = distill_feedforward(_cfg(ghiasi_teacher, content, tmp_path / "c", 1, init=str(model), **kw))
    assert _ghiasi_gap(again, ghiasi_teacher, content, tmp_path / "a" / "bank.pt") < (before + after) / 2
    with pytest.raises(ConfigError, match="starts from a ghiasi model"):
        distill_feedforward(_cfg(ghiasi_teacher, content, tmp_path / "d", 1, init=str(teacher), **kw))


def test_a_narrower_ghiasi_student_takes_the_leading_channels_norm_rows(ghiasi_teacher):
    """The embedding-to-norm rows follow the sliced layers: each narrower norm gets the gamma and beta rows of the
    teacher's leading channels, so a student keeping every channel would be the teacher exactly."""
    from dataclasses import replace

    from brushwork.methods.ghiasi import GhiasiNet
    from brushwork.training.distill import _copy_norm_rows

    t = GhiasiNet.from_pretrained(ghiasi_teacher).eval()
    s = GhiasiNet(replace(t.config, widths=(4, 8, 6)))
    assert transfer_weights(s.transformer, t.transformer) == [] and _copy_norm_rows(s, t, None) == []
    e = torch.randn(2, t.config.embedding)
    sp, tp = s.norm_params(e), t.norm_params(e)
    for sn, tn in zip(s.conditioned, t.conditioned):
        (sg, sb), (tg, tb) = sp.get(sn), tp.get(tn)
        assert torch.allclose(sg, tg[:, : sn.channels]) and torch.allclose(sb, tb[:, : sn.channels])
