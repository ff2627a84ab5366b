"""The studio served from a thread of this process on a free loopback port: what tests and benchmarks drive
(a real HTTP server, no subprocess to clean up)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class LocalServer:
    """uvicorn on 127.0.0.1 in a daemon thread; a context manager that waits until it answers and stops it."""

    def __init__(self, config: Any = None, port: int | None = None) -> None:
        import uvicorn

        from brushwork.web.app import create_app

        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.app = create_app(config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=LOOPBACK, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="brushwork-test-server", daemon=True)

    def __enter__(self) -> LocalServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the local studio server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def load_test(url: str, photo: bytes, *, clients: int = 20, each: int = 2, data: dict[str, str] | None = None,
              timeout: float = 120.0, sample: Any = None) -> dict[str, Any]:
    """``clients`` concurrent clients each posting ``photo`` to ``url``/api/stylize ``each`` times, no retries:
    status counts, latency percentiles (ms) of the answered requests, errors. Loopback addresses only: this is
    for measuring a server on this machine. ``sample`` (optional) is called every 0.2 s meanwhile (e.g. RSS)."""
    import statistics
    from concurrent.futures import ThreadPoolExecutor
    from urllib.parse import urlparse

    import httpx

    host = urlparse(url).hostname or ""
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        raise ValueError(f"load_test drives loopback servers only, not {host}")
    form = data or {"style": "starry_night", "size": "256"}
    statuses: list[int] = []
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client(_: int) -> None:
        with httpx.Client(timeout=timeout) as http:
            for _ in range(each):
                t0 = time.perf_counter()
                try:
                    r = http.post(f"{url}/api/stylize", files={"photo": ("photo.jpg", photo)}, data=form)
                    status = r.status_code
                    ok = status == 200 or ("error" in r.json() and (status not in (429, 503) or "retry-after"
                                                                                    in r.headers))
                except (httpx.HTTPError, ValueError) as exc:
                    status, ok = -1, False
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")
                with lock:
                    statuses.append(status)
                    if status == 200:
                        latencies.append((time.perf_counter() - t0) * 1000)
                    if not ok and status != -1:
                        errors.append(f"{status} without a JSON error / Retry-After")

    done = threading.Event()

    def sampler() -> None:
        while not done.wait(0.2):
            sample()

    watcher = threading.Thread(target=sampler, daemon=True) if sample else None
    if watcher:
        watcher.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    done.set()
    counts = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    lat = sorted(latencies)

    def pct(p: float) -> float | None:
        return round(lat[min(len(lat) - 1, int(p / 100 * len(lat)))], 1) if lat else None

    return {"clients": clients, "requests": len(statuses), "statuses": counts, "wall_s": round(wall, 2),
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": round(lat[-1], 1) if lat else None,
            "mean_ms": round(statistics.fmean(lat), 1) if lat else None, "errors": errors[:5]}
