"""Batch stylization of a folder tree: plan (walk, output names, resume), run, record.

Planning is separate from running so the local loop and the Ray Data path share one idea of
what is to do: :func:`plan_batch` walks ``in_dir``, names each output (the subfolders mirrored
under ``out_dir``) and skips the files the manifest records as done *with the same settings*
(a hash of everything that changes the pixels, model weights and painting files included).
:class:`BatchRecorder` turns each finished file into a manifest line (appended and flushed at
once, so a killed run loses at most the file in flight) and, at the end or on an interruption,
writes ``batch_summary.json``. Outputs are written to a hidden temporary file and renamed, so a
killed run never leaves a half-written image under a real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from brushwork.errors import ConfigError
from brushwork.pipeline import StylizeOptions

if TYPE_CHECKING:  # pragma: no cover
    from brushwork.pipeline import ImageStylizer

MANIFEST_NAME = "batch_manifest.jsonl"
SUMMARY_NAME = "batch_summary.json"
#: Marks a temporary output; leftovers of a killed run are removed when the next run starts.
PARTIAL_TAG = ".partial"
FORMATS = ("png", "jpg")
#: Photo formats picked up from the input folder (Pillow opens more, e.g. .mpg/.h5 stubs, which are not photos).
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".tif", ".tiff", ".bmp", ".dib", ".gif", ".ppm",
    ".pgm", ".pbm", ".pnm", ".pfm", ".tga", ".avif", ".heic", ".heif", ".jp2", ".j2k", ".qoi", ".psd", ".sgi",
    ".pcx", ".ico",
})
_JPEG_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif")
#: The photo the stylizer is tried on before the run, so a bad style or model stops it at once (exit 2)
#: instead of failing every file.
_PROBE_SIZE = (64, 48)

Progress = Callable[["FileResult", int, int], None]


@dataclass(frozen=True)
class BatchSettings:
    """What a batch run makes: the stylization plus the output format (None: .jpg stays .jpg, the rest .png)."""

    stylize: StylizeOptions
    format: str | None = None
    quality: int = 95
    #: written into every output (brushwork.provenance.build_provenance; None: no metadata) / the watermark
    provenance: dict[str, Any] | None = None
    watermark: bool = True

    def validate(self) -> None:
        self.stylize.validate()
        if self.format not in (None, *FORMATS):
            raise ConfigError(f"unknown output format '{self.format}': choose from {', '.join(FORMATS)}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"JPEG quality must be 1..100, got {self.quality}")

    def record(self) -> dict[str, Any]:
        """Everything that changes the output pixels, with digests of the files they name: its hash decides
        which earlier outputs can be kept. The device is left out (the same model gives the same picture)."""
        o = self.stylize
        rec: dict[str, Any] = {
            "method": o.method, "model": o.model, "styles": [[str(s), float(w)] for s, w in o.styles],
            "size": o.size, "strength": float(o.strength), "preserve_color": o.preserve_color, "engine": o.engine,
            "precision": o.precision, "format": self.format, "quality": self.quality,
        }
        if not self.watermark:  # only when off, so the digests of earlier runs stay valid
            rec["watermark"] = False
        for name in ("tile", "stroke_scale", "palette"):  # likewise only when set
            if getattr(o, name) is not None:
                rec[name] = getattr(o, name)
        if o.method not in ("feedforward", "adain"):  # any other registered method: the files it declares
            from brushwork.methods.registry import get_method

            files = get_method(str(o.method)).model_files(o.request())
            rec["model_digests"] = {p.name: _file_digest(p) if p.is_file() else _folder_digest(p) for p in files}
            rec["style_size"], rec["blend"] = o.style_size, o.blend
        elif o.model is not None:
            if Path(o.model).is_file():  # an exported .onnx
                rec["model_digest"] = _file_digest(Path(o.model))
            else:
                from brushwork.registry import resolve_model

                folder, _implied = resolve_model(o.model)
                rec["model_digest"] = _folder_digest(folder)
        else:
            from brushwork.registry import models_dir

            decoder = Path(o.decoder) if o.decoder else models_dir() / "adain"
            rec["decoder"] = o.decoder
            rec["decoder_digest"] = _file_digest(decoder) if decoder.is_file() else _folder_digest(decoder)
            rec["style_size"] = o.style_size or 512
        painting_files = {str(s): _file_digest(Path(s)) for s, _ in o.styles if Path(s).is_file()}
        if painting_files:
            rec["style_digests"] = painting_files
        return rec


@dataclass(frozen=True)
class BatchItem:
    """One photo: its path relative to the input folder and its output's relative to the output folder."""

    input: str
    output: str
    size: int
    mtime_ns: int


@dataclass
class FileResult:
    """How one file went; ``reason`` is the one-line error of a failed file."""

    input: str
    output: str
    status: str  # "done" or "failed"
    reason: str | None = None
    seconds: float = 0.0


@dataclass
class BatchPlan:
    """What a run will do: ``todo`` to stylize, ``skipped`` already done with these settings,
    ``ignored`` files that are not photos (with why)."""

    in_dir: Path
    out_dir: Path
    settings: BatchSettings
    settings_record: dict[str, Any]
    settings_hash: str
    todo: list[BatchItem]
    skipped: list[BatchItem]
    ignored: list[dict[str, str]]
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.skipped)

    def src(self, item: BatchItem) -> Path:
        return self.in_dir / item.input

    def dst(self, item: BatchItem) -> Path:
        return self.out_dir / item.output


@dataclass
class BatchSummary:
    """The run's outcome, as written to ``batch_summary.json``."""

    input: str
    output: str
    runner: str
    done: int
    skipped: int
    failed: int
    ignored: int
    failures: list[dict[str, str]]
    ignored_files: list[dict[str, str]]
    seconds: float
    settings: dict[str, Any]
    settings_hash: str
    interrupted: bool = False
    workers: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- planning


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _folder_digest(folder: Path) -> str | None:
    """A model folder's identity: its config and weights (a retrained model in the same folder redoes the outputs)."""
    files = sorted(p for p in folder.glob("*")
                   if p.is_file() and (p.name == "config.json" or p.suffix == ".safetensors"))
    if not files:
        return None
    return hashlib.sha256("".join(f"{p.name}:{_file_digest(p)};" for p in files).encode()).hexdigest()[:16]


def settings_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


def _walk(in_dir: Path, skip: Path | None) -> Iterator[Path]:
    """Files under ``in_dir`` in a stable order; hidden files and folders, and ``skip`` (an output folder
    inside the input), are left out."""
    for root, dirs, files in os.walk(in_dir):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (skip is None or here / d != skip))
        for name in sorted(files):
            if not name.startswith("."):
                yield here / name


def _output_suffix(src_suffix: str, fmt: str | None) -> str:
    if fmt == "jpg":
        return ".jpg"
    if fmt == "png":
        return ".png"
    return src_suffix if src_suffix.lower() in _JPEG_SUFFIXES else ".png"


def _output_names(rels: list[Path], fmt: str | None) -> list[str]:
    """Mirrored output names; when two photos would share one (a.png and a.tif -> a.png) the one that
    already has that name keeps it and the others keep their extension too (a.tif.png)."""
    wanted = [rel.with_suffix(_output_suffix(rel.suffix, fmt)) for rel in rels]
    counts = Counter(str(w).lower() for w in wanted)
    out = []
    for rel, w in zip(rels, wanted):
        if counts[str(w).lower()] > 1 and rel != w:
            w = rel.with_name(rel.name + w.suffix)
        out.append(w.as_posix())
    return out


def read_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The latest manifest entry per input; a torn last line (a killed run) is ignored."""
    entries: dict[str, dict[str, Any]] = {}
    path = out_dir / MANIFEST_NAME
    if not path.is_file():
        return entries
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("input"), str):
                entries[entry["input"]] = entry
    return entries


def _is_done(entry: dict[str, Any] | None, item: BatchItem, digest: str, out_dir: Path) -> bool:
    if not entry:
        return False
    out = out_dir / item.output
    return (entry.get("settings") == digest and entry.get("output") == item.output
            and entry.get("source_size") == item.size and entry.get("source_mtime_ns") == item.mtime_ns
            and out.is_file() and out.stat().st_size == entry.get("output_size"))


def plan_batch(in_dir: str | Path, out_dir: str | Path, settings: BatchSettings, overwrite: bool = False) -> BatchPlan:
    """Walk ``in_dir`` and decide, from the manifest in ``out_dir``, what is left to do.

    A photo is skipped when the manifest records it done with the same settings hash, the photo is
    unchanged (size, mtime) and its output is still there; ``overwrite`` redoes everything.
    """
    settings.validate()
    src_root = Path(in_dir).expanduser()
    if not src_root.exists():
        raise ConfigError(f"input folder not found: {in_dir}")
    if not src_root.is_dir():
        raise ConfigError(f"input is a file, not a folder: {in_dir} (for single photos use: brushwork stylize)")
    src_root = src_root.resolve()
    dst_root = Path(out_dir).expanduser().resolve()
    if dst_root == src_root:
        raise ConfigError("the output folder is the input folder: give -o another folder")
    if dst_root.exists() and not dst_root.is_dir():
        raise ConfigError(f"output is a file, not a folder: {out_dir}")
    inside = dst_root if dst_root.is_relative_to(src_root) else None
    rels, ignored = [], []
    for path in _walk(src_root, inside):
        rel = path.relative_to(src_root)
        if path.suffix.lower() in IMAGE_SUFFIXES:
            rels.append(rel)
        else:
            ignored.append({"input": rel.as_posix(), "reason": f"not a photo file ({path.suffix or 'no extension'})"})
    if not rels:
        raise ConfigError(f"no photos in {in_dir} (looked for {', '.join(sorted((*_JPEG_SUFFIXES, '.png')))}, "
                          "... in it and its subfolders)")
    outputs = _output_names(rels, settings.format)
    if any((dst_root / o).resolve() == (src_root / r) for r, o in zip(rels, outputs)):
        raise ConfigError("an output would overwrite one of the photos: give -o a folder outside the input")
    record = settings.record()
    digest = settings_hash(record)
    manifest = read_manifest(dst_root)
    todo, skipped = [], []
    for rel, out in zip(rels, outputs):
        st = (src_root / rel).stat()
        item = BatchItem(rel.as_posix(), out, st.st_size, st.st_mtime_ns)
        done = not overwrite and _is_done(manifest.get(item.input), item, digest, dst_root)
        (skipped if done else todo).append(item)
    return BatchPlan(src_root, dst_root, settings, record, digest, todo, skipped, ignored, manifest)


# ---------------------------------------------------------------------------------------------- running


def open_stylizer(options: StylizeOptions) -> ImageStylizer:
    """Load the model once and try it on a small gray picture, so a bad style, model or engine is one
    error before the run rather than the same failure for every file."""
    from brushwork.pipeline import ImageStylizer

    try:
        stylizer = ImageStylizer(options)
    except ImportError as exc:
        extra = "onnx" if options.engine in ("onnx", "int8") else "all"
        raise ConfigError(f"--engine {options.engine} needs a package that is not installed ({exc.name}): "
                          f"pip install 'brushwork[{extra}]'") from exc
    stylizer(Image.new("RGB", _PROBE_SIZE, (128, 128, 128)))
    return stylizer


def write_atomic(img: Image.Image, out: Path, quality: int = 95, **marks: Any) -> None:
    """Write to a hidden temporary name beside ``out`` and rename it: readers (and a resumed run) see
    either no file or the whole image, never a truncated one."""
    from brushwork.image.io import save_image

    tmp = out.with_name(f".{out.stem}.{uuid.uuid4().hex[:8]}{PARTIAL_TAG}{out.suffix}")
    try:
        save_image(img, tmp, quality=quality, **marks)  # marks: provenance=, watermark= (see save_image)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def stylize_file(stylizer: Callable[[Image.Image], Image.Image], src: Path, dst: Path,
                 quality: int = 95, **marks: Any) -> tuple[str | None, float]:
    """Stylize one photo into ``dst``; returns (None, seconds) or (the one-line reason, seconds).

    Any error of this one file (unreadable, corrupt, too big, a write error) is its failure and
    the batch carries on; only an interruption stops it.
    """
    from brushwork.errors import BrushworkError
    from brushwork.image.io import load_image

    t0 = time.perf_counter()
    try:
        write_atomic(stylizer(load_image(src, what="photo")), dst, quality, **marks)
    except BrushworkError as exc:
        return str(exc), time.perf_counter() - t0
    except MemoryError:
        return "out of memory (use a smaller --size)", time.perf_counter() - t0
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0], time.perf_counter() - t0
    return None, time.perf_counter() - t0


def remove_partials(out_dir: Path) -> None:
    """Temporary outputs left by a killed run."""
    if out_dir.is_dir():
        for p in out_dir.rglob(f".*{PARTIAL_TAG}.*"):
            with contextlib.suppress(OSError):
                p.unlink()


class BatchRecorder:
    """Turns finished files into manifest lines, progress calls and, at :meth:`close`, the summary.

    Used as a context manager: leaving it by an exception (Ctrl-C, a lost cluster) still writes the
    summary, marked interrupted, and the manifest keeps every file finished so far.
    """

    def __init__(self, plan: BatchPlan, runner: str, progress: Progress | None = None,
                 workers: int | None = None, started: float | None = None) -> None:
        self.plan = plan
        self.runner = runner
        self.workers = workers
        self.progress = progress
        self.results: list[FileResult] = []
        self.summary: BatchSummary | None = None
        self._t0 = time.perf_counter() if started is None else started  # perf_counter() when the run began
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        remove_partials(plan.out_dir)
        self._manifest = open(plan.out_dir / MANIFEST_NAME, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def __enter__(self) -> BatchRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: Any) -> None:
        self.close(interrupted=exc_type is not None)

    def record(self, item: BatchItem, reason: str | None, seconds: float) -> FileResult:
        """One finished file: a manifest line when it was done, then the progress callback."""
        result = FileResult(item.input, item.output, "failed" if reason else "done", reason, round(seconds, 3))
        if reason is None:
            out = self.plan.dst(item)
            entry = {"input": item.input, "output": item.output, "settings": self.plan.settings_hash,
                     "source_size": item.size, "source_mtime_ns": item.mtime_ns,
                     "output_size": out.stat().st_size, "seconds": result.seconds}
            self._manifest.write(json.dumps(entry) + "\n")
            self._manifest.flush()
            self.plan.manifest[item.input] = entry
        self.results.append(result)
        if self.progress is not None:
            self.progress(result, len(self.results), len(self.plan.todo))
        return result

    def close(self, interrupted: bool = False) -> BatchSummary:
        """Compact the manifest (one line per photo) and write ``batch_summary.json``, both atomically."""
        if self.summary is not None:
            return self.summary
        self._manifest.close()
        out_dir = self.plan.out_dir
        _write_text_atomic(out_dir / MANIFEST_NAME,
                           "".join(json.dumps(e) + "\n" for e in self.plan.manifest.values()))
        failures = [{"input": r.input, "reason": r.reason or ""} for r in self.results if r.status == "failed"]
        settings = {**self.plan.settings_record, "device": self.plan.settings.stylize.device}
        self.summary = BatchSummary(
            input=str(self.plan.in_dir), output=str(out_dir), runner=self.runner,
            done=sum(r.status == "done" for r in self.results), skipped=len(self.plan.skipped),
            failed=len(failures), ignored=len(self.plan.ignored), failures=failures,
            ignored_files=list(self.plan.ignored), seconds=round(time.perf_counter() - self._t0, 3),
            settings=settings, settings_hash=self.plan.settings_hash, interrupted=interrupted, workers=self.workers)
        _write_text_atomic(out_dir / SUMMARY_NAME, json.dumps(self.summary.to_dict(), indent=2) + "\n")
        return self.summary


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def run_local(plan: BatchPlan, progress: Progress | None = None,
              stylizer: Callable[[Image.Image], Image.Image] | None = None) -> BatchSummary:
    """Stylize ``plan.todo`` one by one in this process (the model loaded once).

    ``progress(result, finished, total)`` is called after each file; ``stylizer`` replaces the one
    built from the plan's options (tests, or a caller that already holds a loaded model).
    """
    started = time.perf_counter()
    model = (stylizer or open_stylizer(plan.settings.stylize)) if plan.todo else None
    with BatchRecorder(plan, "local", progress, started=started) as rec:
        if model is not None:
            for item in plan.todo:
                reason, seconds = stylize_file(model, plan.src(item), plan.dst(item), plan.settings.quality,
                                               provenance=plan.settings.provenance,
                                               watermark=plan.settings.watermark)
                rec.record(item, reason, seconds)
    assert rec.summary is not None
    return rec.summary


def batch_stylize(in_dir: str | Path, out_dir: str | Path, options: StylizeOptions, *, format: str | None = None,
                  overwrite: bool = False, progress: Progress | None = None, ray: str | None = None,
                  workers: int | None = None) -> BatchSummary:
    """Plan and run in one call: locally, or on Ray Data when ``ray`` names a cluster (see
    :func:`brushwork.batch.ray.run_ray`)."""
    plan = plan_batch(in_dir, out_dir, BatchSettings(options, format=format), overwrite=overwrite)
    if ray is None:
        return run_local(plan, progress)
    from brushwork.batch.ray import run_ray

    return run_ray(plan, address=ray, workers=workers, progress=progress)


__all__ = [
    "MANIFEST_NAME", "SUMMARY_NAME", "BatchItem", "BatchPlan", "BatchRecorder", "BatchSettings", "BatchSummary",
    "FileResult", "batch_stylize", "open_stylizer", "plan_batch", "read_manifest", "run_local",
    "stylize_file", "write_atomic",
]
