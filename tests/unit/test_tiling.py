"""Tiled one-pass stylization (issue 15): geometry, whole-picture statistics on torch and onnxruntime,
controls per tile, stroke scale, and the command line's one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.errors import ConfigError, ResourceError
from brushwork.inference.arrays import Finish
from brushwork.tiling import (
    MIN_TILE,
    NormRunner,
    TileGrid,
    needs_tiles,
    plan_tiles,
    render,
    spans,
    stylize_tiled,
    tiled_cost,
)


def _photo(w: int = 300, h: int = 200, seed: int = 0) -> Image.Image:
    """Dark on the left, bright on the right, with texture: tiles of it have very different statistics."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.where(xx < w // 2, 40, 200)[..., None] + 30 * np.sin(xx / 7.0 + yy / 11.0)[..., None]
    arr = np.clip(base + rng.normal(0, 12, (h, w, 3)) + np.array([0, 20, -20]), 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


# ------------------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("length,tile,overlap", [(1000, 256, 64), (257, 256, 32), (8000, 1024, 64), (300, 300, 16)])
def test_spans_cover_with_the_overlap_asked(length: int, tile: int, overlap: int) -> None:
    windows = spans(length, tile, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == length
    assert all(e - s <= tile for s, e in windows)
    for (_, e0), (s1, _) in zip(windows, windows[1:]):
        assert overlap - 1 <= e0 - s1 <= overlap + 1


def test_tile_weights_are_a_partition_of_unity() -> None:
    src = (np.random.default_rng(1).random((333, 517, 3)) * 255).astype(np.uint8)
    grid = TileGrid(517, 333, 160, pad=16)
    assert len(grid) > 6
    out = stylize_tiled(src, grid, lambda x, t: x)
    assert np.abs(out * 255 - src).max() < 1e-3


def test_every_tile_runs_with_context_but_writes_only_its_box() -> None:
    grid = TileGrid(600, 400, 200, pad=24)
    for tile in grid:
        x0, y0, x1, y1 = tile.box
        cx0, _, _, cy1 = tile.context
        assert cx0 == max(0, x0 - 24) and cy1 == min(400, y1 + 24)
        assert tile.weights().shape == (y1 - y0, x1 - x0)


def test_tile_sizes_that_cannot_work_are_one_line() -> None:
    with pytest.raises(ConfigError, match="at least"):
        TileGrid(1000, 1000, MIN_TILE - 1)
    with pytest.raises(ConfigError, match="context padding"):
        TileGrid(1000, 1000, 128, pad=64)


def test_plan_tiles_is_automatic_above_2048_or_when_memory_is_short() -> None:
    def cost(w: int, h: int) -> int:
        return w * h * 100

    assert plan_tiles(2048, 1536, None, cost, 1 << 40) is None
    assert plan_tiles(3000, 2000, None, cost, 1 << 40) is not None
    assert plan_tiles(1500, 1500, None, cost, 100 * 1000 * 1000) is not None  # one pass would not fit
    assert plan_tiles(3000, 2000, 0, cost, 1 << 40) is None  # --tile 0: never
    grid = plan_tiles(1000, 800, 256, cost, 1 << 40)
    assert grid is not None and grid.tile == 256
    assert tiled_cost(grid, cost) < cost(1000, 800) + 1000 * 800 * 30
    assert not needs_tiles(500, 500, 512) and needs_tiles(600, 500, 512)


# ------------------------------------------------------------------------------------------ statistics
class _OwnStats(NormRunner):
    """Naive tiling: each tile normalised with its own statistics (what whole-picture statistics avoid)."""

    def __init__(self, inner: NormRunner) -> None:
        self.inner = inner

    def run(self, x, box=None):
        return self.inner.run(x)

    def measure(self, x):
        return None

    def apply(self, x, stats, box=None):
        return self.inner.run(x)


def _region_means(img: Image.Image) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    w = a.shape[1]
    return np.array([a[:, : w // 2].mean(), a[:, w // 2:].mean()])


def _tiny_net(seed: int = 0, subpixel: bool = False):
    from brushwork.methods.feedforward import TransformerConfig, TransformerNet

    torch.manual_seed(seed)
    return TransformerNet(TransformerConfig(widths=(4, 8, 8), n_residual=1, n_styles=2, subpixel=subpixel)).eval()


def test_torch_norm_hooks_with_own_statistics_change_nothing() -> None:
    from brushwork.methods.thumbnorm import norm_statistics

    net = _tiny_net()
    x = torch.rand(1, 3, 40, 56)
    w = torch.tensor([[0.3, 0.7]])
    with torch.no_grad():
        plain = net(x, w)
        record: list = []
        with norm_statistics(net, record=record):
            net(x, w)
        assert len(record) == sum(1 for m in net.modules() if type(m).__name__ == "ConditionalInstanceNorm2d")
        with norm_statistics(net, record):
            again = net(x, w)
        shifted = [(m + 1.0, v) for m, v in record]
        with norm_statistics(net, shifted):
            other = net(x, w)
    assert torch.allclose(plain, again, atol=1e-5)
    assert (plain - other).abs().max() > 1e-3


def _torch_runner(net):
    from brushwork.methods.thumbnorm import TorchNormRunner

    w = torch.tensor([[1.0, 0.0]])
    with torch.no_grad():
        return TorchNormRunner(net, lambda t: net(t, w))


def test_tiles_with_the_thumbnails_statistics_stay_like_one_pass_and_naive_tiles_do_not() -> None:
    net = _tiny_net(3)
    photo = _photo(320, 200)
    runner = _torch_runner(net)
    with torch.no_grad():
        one = render(photo, None, runner, None, [])
        grid = TileGrid(320, 200, 128, pad=16)
        notes: list[str] = []
        tiled = render(photo, grid, runner, None, notes)
        naive = render(photo, grid, _OwnStats(runner), None, [])
    assert "tiles" in notes[0] and "thumbnail" in notes[0]
    d_tiled = np.abs(_region_means(tiled) - _region_means(one)).max()
    d_naive = np.abs(_region_means(naive) - _region_means(one)).max()
    assert d_tiled < 0.5 * d_naive, (d_tiled, d_naive)
    diff = np.abs(np.asarray(tiled, np.float64) - np.asarray(one, np.float64)).mean()
    assert diff < 6.0  # in 0..255: the same picture, up to what context does at tile edges


@pytest.mark.parametrize(("subpixel", "norms"), [(False, 7), (True, 6)])  # 3 or 2 down, 2 residual, 2 up
def test_onnx_graph_rewrite_measures_and_applies_statistics(subpixel, norms, tmp_path) -> None:
    from brushwork.export.onnx import export_feedforward
    from brushwork.inference.feedforward import OrtFeedForward

    net = _tiny_net(1, subpixel)
    folder = tmp_path / "m"
    net.save_pretrained(folder)
    ff = OrtFeedForward(export_feedforward(folder, tmp_path / "m.onnx"))
    x = np.random.default_rng(0).random((1, 3, 48, 64)).astype(np.float32)
    w = np.array([[0.0, 1.0]], np.float32)
    plain = ff.transform(x, w)
    runner = ff.runner(w)
    stats = runner.measure(x)
    assert len(stats) == norms and stats[0][0].shape == (8 if subpixel else 4,)
    assert np.abs(runner.apply(x, stats) - plain).max() < 1e-4
    assert np.abs(runner.run(x) - plain).max() < 1e-6
    # the torch net with the same statistics agrees with the graph
    from brushwork.methods.thumbnorm import norm_statistics

    with torch.no_grad(), norm_statistics(net, stats):
        y = net(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    assert np.abs(y - plain).max() < 1e-3


def test_onnx_and_torch_tiles_agree(tmp_path) -> None:
    from brushwork.export.onnx import export_feedforward
    from brushwork.inference.feedforward import OrtFeedForward
    from brushwork.methods.feedforward import FeedForwardStylizer

    net = _tiny_net(2)
    folder = tmp_path / "m"
    net.save_pretrained(folder)
    photo = _photo(300, 220)
    ort = OrtFeedForward(export_feedforward(folder, tmp_path / "m.onnx")).stylize(photo, "style1", tile=128)
    tor = FeedForwardStylizer(folder, precision="fp32").stylize(photo, "style1", tile=128)
    assert ort.size == tor.size == (300, 220)
    assert any("tiles" in n for n in ort.notes) and any("tiles" in n for n in tor.notes)
    assert np.abs(np.asarray(ort.image, np.float64) - np.asarray(tor.image, np.float64)).mean() < 1.0


# ------------------------------------------------------------------------------------------ controls
def test_controls_apply_per_tile(tmp_path) -> None:
    from brushwork.methods.feedforward import FeedForwardStylizer

    folder = tmp_path / "m"
    _tiny_net(4).save_pretrained(folder)
    st = FeedForwardStylizer(folder, precision="fp32")
    photo = _photo(300, 200)
    same = st.stylize(photo, "style1", tile=128, strength=0.0).image
    assert np.abs(np.asarray(same, np.int16) - np.asarray(photo, np.int16)).max() <= 1
    mask = np.zeros((200, 300, 3), np.uint8)
    mask[:, 200:] = 255
    out = st.stylize(photo, "style1", tile=128, mask=Image.fromarray(mask)).image
    left = np.abs(np.asarray(out, np.int16)[:, :150] - np.asarray(photo, np.int16)[:, :150]).max()
    right = np.abs(np.asarray(out, np.int16)[:, 250:] - np.asarray(photo, np.int16)[:, 250:]).mean()
    assert left <= 1 and right > 10
    grey = st.stylize(photo, "style1", tile=128, preserve_color="luminance").image
    chroma = np.asarray(grey.convert("YCbCr"), np.float64)[..., 1:] - np.asarray(photo.convert("YCbCr"),
                                                                                 np.float64)[..., 1:]
    assert np.abs(chroma).mean() < 3


def test_finish_reads_its_mask_at_the_tile(tmp_path) -> None:
    keep = np.zeros((10, 20), np.float32)
    keep[:, 10:] = 1
    f = Finish(keep=keep)
    y, x = np.ones((1, 3, 10, 5), np.float32), np.zeros((1, 3, 10, 5), np.float32)
    assert f(y, x, (12, 0, 17, 10)).min() == 1 and f(y, x, (0, 0, 5, 10)).max() == 0


def test_adain_tiles_pool_the_whole_photos_content_statistics(monkeypatch) -> None:
    from brushwork.methods import adain as A

    st = A.AdaINStylizer.__new__(A.AdaINStylizer)
    st.device, st.dtype = torch.device("cpu"), torch.float32
    torch.manual_seed(0)
    st.encoder = None
    conv = torch.nn.Conv2d(3, 6, 8, stride=8)
    st._encode = lambda x, layers=(A.ENCODER_LAYER,): {A.ENCODER_LAYER: conv(x).detach()}
    seen = []

    def render(photo, s, m, a, content=None):
        seen.append(content)
        return photo[..., : photo.shape[-2], : photo.shape[-1]]

    st.render = render
    st.style_stats = lambda style, photo, cfg, notes: (torch.zeros(1, 6, 1, 1), torch.ones(1, 6, 1, 1))
    photo = _photo(256, 192)
    r = st.stylize(photo, ["painting"], config=A.AdaINConfig(tile=128))
    assert r.size == (256, 192) and any("tiles" in n for n in r.notes)
    whole = torch.from_numpy(np.asarray(photo, np.float32) / 255).permute(2, 0, 1)[None]
    whole_mean, whole_std = A.mean_std(conv(whole))
    mean, std = seen[0]
    # tiles sample the stride-8 features on their own grid: the pooled statistics agree to a fraction of a percent
    assert torch.allclose(mean, whole_mean.detach(), atol=0.01) and torch.allclose(std, whole_std.detach(), rtol=0.02)


def test_memory_is_priced_per_tile(tmp_path) -> None:
    from brushwork.methods.feedforward import FeedForwardStylizer

    folder = tmp_path / "m"
    _tiny_net(5).save_pretrained(folder)
    st = FeedForwardStylizer(folder, precision="fp32")
    photo = _photo(600, 400)
    with pytest.raises(ResourceError, match="GiB"):
        st.stylize(photo, "style1", tile=0, memory_limit=210 << 20)
    r = st.stylize(photo, "style1", memory_limit=232 << 20)  # automatic: tiles, since one pass would not fit
    assert any("tiles" in n for n in r.notes)


# ------------------------------------------------------------------------------------------ strokes, CLI
def test_stroke_scale_paints_small_and_keeps_the_photos_detail(tmp_path) -> None:
    from brushwork.methods.registry import Request, get_method

    folder = tmp_path / "m"
    _tiny_net(6).save_pretrained(folder)
    method = get_method("feedforward")
    req = Request(styles=[("style1", 1.0)], model=str(folder), engine="torch", precision="fp32")
    loaded = method.load(req)
    photo = _photo(320, 240)
    plain = method.run(loaded, photo, req)
    big = method.run(loaded, photo, Request(**{**req.__dict__, "stroke_scale": 4.0}))
    assert big.size == plain.size == (320, 240)
    assert any("strokes x4" in n for n in big.notes)

    def detail(img: Image.Image) -> float:
        a = np.asarray(img.convert("L"), np.float64)
        return float(np.abs(np.diff(a, axis=1)).mean())

    painted_small = method.stylize(loaded, photo.resize((80, 60)), req).image.resize((320, 240), Image.LANCZOS)
    assert detail(big.image) > 1.3 * detail(painted_small)


@pytest.mark.parametrize("flags,message", [(["--tile", "64"], "at least 128"),
                                           (["--stroke-scale", "40"], "from 1 to 16"),
                                           (["--tile", "abc"], "whole number")])
def test_bad_tiling_flags_are_one_line(tmp_path, capsys, flags, message) -> None:
    from brushwork.cli.main import main

    photo = tmp_path / "p.png"
    _photo(64, 48).save(photo)
    assert main(["stylize", str(photo), "--model", "starry_night", "-o", str(tmp_path / "o.jpg"), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "o.jpg").exists()


def test_cli_tiles_a_shipped_model(tmp_path, capsys) -> None:
    from brushwork.cli.main import main

    photo = tmp_path / "p.png"
    _photo(400, 300).save(photo)
    out = tmp_path / "o.png"
    assert main(["stylize", str(photo), "--model", "starry_night", "--tile", "160", "-o", str(out), "-q",
                 "--json"]) == 0
    assert Image.open(out).size == (400, 300)
    assert "tiles" in capsys.readouterr().out


def test_a_job_that_cannot_fit_even_in_tiles_is_refused_before_decoding(tmp_path, monkeypatch, capsys) -> None:
    import struct
    import zlib

    from brushwork.cli.main import main

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    # a header claiming 12000x9000 RGB, and bytes enough not to look like a bomb (never decoded here)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 12000, 9000, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", bytes(200_000)) + chunk(b"IEND", b""))
    photo = tmp_path / "huge.png"
    photo.write_bytes(png)
    monkeypatch.setattr("brushwork.image.io.available_memory", lambda: 1 << 30)
    decoded = []
    monkeypatch.setattr("brushwork.inference.arrays.load_image", lambda *a, **k: decoded.append(a))
    assert main(["stylize", str(photo), "--model", "starry_night", "-o", str(tmp_path / "o.jpg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "even in tiles" in err[0] and "GiB" in err[0], err
    assert not decoded and not (tmp_path / "o.jpg").exists()
