"""One bounded worker per server: the one thread that runs models, and the optimization jobs it runs.

Models use every core, so running two stylizations at once only makes both slower and doubles the
memory; one worker thread with short bounded queues keeps the machine responsive and answers the
rest with 429 (queue full) or 503 (waited too long, or stopping) and a ``Retry-After``. One-pass
requests go first; an optimization job (minutes) serves the waiting one-pass requests between its
own steps, so the page stays usable while a job runs. Jobs are capped in steps and time, stop when
cancelled or when no client has looked at them for a while, and their results expire.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image


class Busy(Exception):
    """The worker cannot take this now: HTTP ``status`` (429 or 503) with ``retry_after`` seconds."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, max(1, int(retry_after))


class JobStopped(Exception):
    """Raised inside an optimization's progress callback to end it early (cancel, cap, abandoned)."""


def encode(img: Image.Image, fmt: str = "png", quality: int = 90, *, provenance: dict[str, Any] | None = None,
           watermark: bool = False) -> bytes:
    """An image as PNG (brushwork's fast writer: the answer is a download, not an archive) or JPEG bytes; a
    result gets brushwork's watermark and provenance record (brushwork.provenance), previews and thumbnails do
    not."""
    from brushwork.image.png import encode_png
    from brushwork.provenance import encode as marked

    name = "JPEG" if fmt == "jpeg" else "PNG"
    img, kwargs, _ = marked(img, name, provenance=provenance, watermark=watermark, quality=quality)
    if name == "PNG":
        data = encode_png(img, kwargs["pnginfo"].chunks if "pnginfo" in kwargs else ())
        if data is not None:
            return data
        kwargs["compress_level"] = 1  # a mode the writer does not take: Pillow, fast
    buf = io.BytesIO()
    img.save(buf, name, **kwargs)
    return buf.getvalue()


@dataclass
class Job:
    """An optimization run: its progress, its latest preview and, once done, its result (PNG bytes)."""

    id: str
    total: int
    state: str = "queued"  # queued, running, done, failed, cancelled
    step: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    preview: bytes | None = None  # JPEG of the current image
    preview_seq: int = 0
    result: bytes | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    last_seen: float = field(default_factory=time.monotonic)
    cancel: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = "cancelled"
    changed: threading.Condition = field(default_factory=threading.Condition)
    future: Any = None  # the worker's future while queued (cancelling it before it runs)
    shown: float = 0.0  # when the last preview was made

    @property
    def finished_state(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def touch(self) -> None:
        """A client looked at the job: it is not abandoned."""
        self.last_seen = time.monotonic()

    def stop(self, reason: str) -> None:
        self.cancel_reason = reason
        self.cancel.set()
        self.notify()

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def status(self) -> dict[str, Any]:
        """What ``GET /api/jobs/{id}`` answers."""
        now = self.finished or time.monotonic()
        return {"id": self.id, "state": self.state, "step": self.step, "total": self.total,
                "progress": round(self.step / self.total, 4) if self.total else 0.0,
                "losses": {k: round(v, 6) for k, v in self.losses.items()},
                "size": list(self.size) if self.size else None,
                "seconds": round(now - self.started, 2) if self.started else 0.0,
                "error": self.error, "notes": self.notes, "preview_seq": self.preview_seq,
                "result": f"/api/jobs/{self.id}/result" if self.result is not None else None}


class JobStore:
    """Jobs by id, in memory only; finished ones expire after ``ttl`` seconds, at most ``keep`` kept."""

    def __init__(self, ttl: float = 600.0, keep: int = 32) -> None:
        self.ttl, self.keep = ttl, keep
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._lock = threading.Lock()

    def new(self, total: int) -> Job:
        job = Job(id=secrets.token_urlsafe(12), total=total)
        with self._lock:
            self._sweep()
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            self._sweep()
            return self._jobs.get(job_id)

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._jobs)

    def _sweep(self) -> None:
        now = time.monotonic()
        for jid in [j.id for j in self._jobs.values() if j.finished and now - j.finished > self.ttl]:
            del self._jobs[jid]
        finished = [j.id for j in self._jobs.values() if j.finished_state]
        for jid in finished[: max(0, len(self._jobs) - self.keep)]:
            del self._jobs[jid]


@dataclass
class _Task:
    fn: Callable[[], Any]
    future: concurrent.futures.Future
    queued: float = field(default_factory=time.monotonic)


class Worker:
    """The single model thread: a queue of one-pass tasks (``max_quick`` waiting at most) and a queue of
    optimization jobs (``max_jobs`` waiting or running). A one-pass task that waited longer than
    ``max_wait`` seconds is answered 503 instead of run (its client has likely given up)."""

    def __init__(self, max_quick: int = 8, max_jobs: int = 2, max_wait: float = 60.0) -> None:
        self.max_quick, self.max_jobs, self.max_wait = max_quick, max_jobs, max_wait
        self._quick: collections.deque[_Task] = collections.deque()
        self._jobs: collections.deque[_Task] = collections.deque()
        self._cv = threading.Condition()
        self._running_job = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._seconds = collections.deque(maxlen=16)  # recent one-pass durations, for Retry-After

    # -- submitting ----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="brushwork-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            for task in [*self._quick, *self._jobs]:
                task.future.cancel()
            self._quick.clear()
            self._jobs.clear()
            self._cv.notify_all()

    def retry_after(self) -> int:
        typical = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 1.0
        return max(1, round(typical * (len(self._quick) + 1)))

    def check_room(self, job: bool = False) -> None:
        """Refuse early (before the upload is read) when the queue is already full."""
        if self._stopping:
            raise Busy(503, "the server is shutting down", 5)
        if job and len(self._jobs) + self._running_job >= self.max_jobs:
            raise Busy(429, f"{self.max_jobs} optimization job(s) already queued or running: try again later", 30)
        if not job and len(self._quick) >= self.max_quick:
            raise Busy(429, f"the server is busy ({self.max_quick} requests waiting): try again shortly",
                       self.retry_after())

    def submit(self, fn: Callable[[], Any], job: bool = False) -> concurrent.futures.Future:
        """Queue ``fn`` (a one-pass task, or with ``job`` an optimization); its future holds the result."""
        with self._cv:
            self.check_room(job)
            task = _Task(fn, concurrent.futures.Future())
            (self._jobs if job else self._quick).append(task)
            self._cv.notify_all()
        return task.future

    def pending(self) -> dict[str, int]:
        return {"waiting": len(self._quick), "jobs": len(self._jobs) + self._running_job}

    # -- running ---------------------------------------------------------------------------------------
    def serve_waiting(self) -> None:
        """Run the one-pass tasks waiting now (called by a running job between its steps)."""
        while True:
            with self._cv:
                if not self._quick:
                    return
                task = self._quick.popleft()
            self._run(task, quick=True)

    def _run(self, task: _Task, quick: bool) -> None:
        if not task.future.set_running_or_notify_cancel():
            return  # cancelled while waiting (its client went away)
        if quick and time.monotonic() - task.queued > self.max_wait:
            task.future.set_exception(Busy(503, f"waited over {self.max_wait:.0f} s in the queue", self.retry_after()))
            return
        t0 = time.perf_counter()
        try:
            task.future.set_result(task.fn())
        except BaseException as exc:  # the caller turns it into the HTTP answer
            task.future.set_exception(exc)
        if quick:
            self._seconds.append(time.perf_counter() - t0)

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not (self._quick or self._jobs or self._stopping):
                    self._cv.wait()
                if self._stopping:
                    return
                quick = bool(self._quick)
                task = self._quick.popleft() if quick else self._jobs.popleft()
                self._running_job = not quick
            try:
                self._run(task, quick)
            finally:
                with self._cv:
                    self._running_job = False
