"""brushwork serve, measured on this machine (loopback only):

1. a built-in style at 1024 px through ``POST /api/stylize`` against the same stylization in a warm process
   (the model loaded once, as the CLI's stylize loop has it); the goal is at most 1.3x;
2. a load test: 20 concurrent clients posting photos to a ``brushwork serve`` subprocess (every request
   answered 200/429/503, the server's peak memory, latency percentiles);
3. in-browser mode in headless Debian chromium: seconds at 512 px, webcam frames per second at 256 px;
4. ``--screenshots DIR``: the page on a desktop and a phone with the bundled portrait.

    PYTHONPATH=src python benchmarks/bench_web.py --out benchmarks/results/web.md --screenshots docs
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, table, write_report
from PIL import Image

CHROMIUM = "/usr/bin/chromium"


def machine() -> str:
    import torch

    cap = torch.backends.cpu.get_cpu_capability()
    bf16 = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    load = os.getloadavg()
    return (f"{model}, {os.cpu_count()} cores, torch {torch.__version__} ({cap}, mkldnn bf16: {bf16}), "
            f"{torch.get_num_threads()} threads; load average at start {load[0]:.1f} (the machine is shared)")


def portrait(longest: int) -> Image.Image:
    from brushwork.demo import demo_photo

    img = Image.open(demo_photo()).convert("RGB")
    scale = longest / max(img.size)
    return img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def median_time(fn: Any, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def server_vs_cli(photo: Image.Image, repeats: int, engine: str) -> tuple[dict[str, Any], Any]:
    """The same request both ways, interleaved (the machine is shared: drift hits both alike); min and median."""
    import httpx

    from brushwork.image.io import save_image
    from brushwork.methods.registry import Request, get_method
    from brushwork.web.app import ServerConfig
    from brushwork.web.local import LocalServer

    tmp = Path(tempfile.mkdtemp())
    path = tmp / "photo.jpg"
    path.write_bytes(jpeg(photo))
    method = get_method("feedforward")
    req = Request(styles=[("starry_night", 1.0)], options=method.Options(), size=1024, model="cin", engine=engine,
                  many=True)
    loaded = method.load(req)
    server = LocalServer(ServerConfig()).__enter__()
    body = path.read_bytes()
    cli, cli_png, srv = [], [], []
    with httpx.Client(timeout=120) as http:
        def post() -> None:
            r = http.post(f"{server.url}/api/stylize", files={"photo": ("photo.jpg", body)},
                          data={"style": "starry_night", "size": "1024", "engine": engine})
            r.raise_for_status()

        post()  # loads the model once
        method.stylize(loaded, path, req)  # warm
        for _ in range(repeats):
            t0 = time.perf_counter()
            image = method.stylize(loaded, path, req).image
            cli.append(time.perf_counter() - t0)
            save_image(image, tmp / "out.png")
            cli_png.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            post()
            srv.append(time.perf_counter() - t0)

    def fmt(xs: list[float]) -> str:
        return f"{min(xs):.3f} / {statistics.median(xs):.3f}"

    def ratio(a: list[float], b: list[float]) -> str:
        return f"{min(a) / min(b):.2f} / {statistics.median(a) / statistics.median(b):.2f}"

    row = {"engine": engine, "photo": f"{photo.width}x{photo.height}",
           "warm process: stylize (s, min / median)": fmt(cli),
           "warm process: stylize + write PNG (s)": fmt(cli_png),
           "server: POST to PNG received (s)": fmt(srv),
           "ratio to stylize + PNG (min / median; goal <= 1.3)": ratio(srv, cli_png),
           "ratio to stylize alone": ratio(srv, cli)}
    return row, server


def rss_mb(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    get = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith(("VmRSS", "VmHWM"))}
    return int(get["VmRSS"]) / 1024, int(get["VmHWM"]) / 1024


def load(photo: Image.Image, clients: int, each: int) -> dict[str, Any]:
    import httpx

    from brushwork.web.local import free_port, load_test

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "brushwork", "serve", "--port", str(port), "--queue", "8"],
                            env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/api/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        body = jpeg(photo)
        httpx.post(f"{url}/api/stylize", files={"photo": ("p.jpg", body)}, data={"style": "starry_night"},
                   timeout=120).raise_for_status()  # the model loaded
        idle = rss_mb(proc.pid)[0]
        peak = [idle]
        report = load_test(url, body, clients=clients, each=each, data={"style": "starry_night", "size": "512"},
                           sample=lambda: peak.append(rss_mb(proc.pid)[0]))
        health = httpx.get(f"{url}/api/health", timeout=5).json()
        report.update(rss_idle_mb=round(idle, 0), rss_peak_mb=round(max(peak), 0),
                      rss_hwm_mb=round(rss_mb(proc.pid)[1], 0), up_after=health["ok"], waiting_after=health["waiting"])
        return report
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def browser(server: Any, photo512: Image.Image, webcam_seconds: float, screenshots: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp())
    p512 = tmp / "p512.png"
    photo512.save(p512)
    out: dict[str, Any] = {}
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        page = b.new_page(viewport={"width": 1360, "height": 900})
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", state="attached")
        page.set_input_files("[data-testid=photo]", str(p512))
        page.click("[data-testid=style-starry_night]")
        page.select_option("[data-testid=size]", "512")
        t0 = time.perf_counter()
        page.check("[data-testid=in-browser]", force=True)
        page.wait_for_selector("#browser-note:has-text('Running in your browser')", timeout=120_000)
        out["runtime + model load (s)"] = round(time.perf_counter() - t0, 2)
        out["backend"] = page.evaluate("() => document.body.dataset.backend")
        secs = []
        for _ in range(4):
            before = page.evaluate("() => document.body.dataset.localSeconds || ''")
            page.click("[data-testid=run]")
            for _ in range(1200):
                now = page.evaluate("() => document.body.dataset.localSeconds || ''")
                if now and now != before:
                    secs.append(float(now))
                    break
                page.wait_for_timeout(50)
        out["in-browser 512 px: first (s)"] = round(secs[0], 3)
        out["in-browser 512 px: median of next 3 (s)"] = round(statistics.median(secs[1:]), 3)
        page.click("[data-testid=webcam]")
        page.wait_for_timeout(webcam_seconds * 1000)
        out["webcam 256 px (fps, last 2 s)"] = float(page.evaluate("() => document.body.dataset.fps"))
        out["webcam frames"] = int(page.evaluate("() => document.body.dataset.frames"))
        out["webcam size"] = page.inner_text("[data-testid=fps]").split("·")[-1].strip()
        page.click("[data-testid=webcam]")
        b.close()
        if screenshots:
            shoot(p, server, screenshots)
    return out


def shoot(p: Any, server: Any, folder: Path) -> None:
    """The page with the bundled portrait in Starry Night, the before/after split in the middle."""
    from brushwork.demo import demo_photo

    folder.mkdir(parents=True, exist_ok=True)
    b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
    for name, viewport, full in [("web_desktop", {"width": 1360, "height": 900}, False),
                                 ("web_phone", {"width": 390, "height": 844}, True)]:
        page = b.new_page(viewport=viewport)
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", state="attached")
        page.set_input_files("[data-testid=photo]", str(demo_photo()))
        page.click("[data-testid=style-starry_night]")
        page.select_option("[data-testid=size]", "1024")
        page.click("[data-testid=run]")
        page.wait_for_selector("[data-testid=result][src^=blob]", state="attached", timeout=120_000)
        page.eval_on_selector("[data-testid=compare]",
                              "e => { e.value = 50; e.dispatchEvent(new Event('input', {bubbles: true})); }")
        page.wait_for_timeout(1500)  # thumbnails
        page.evaluate("() => window.scrollTo(0, 0)")
        shot = page.screenshot(full_page=full)
        Image.open(io.BytesIO(shot)).convert("RGB").save(folder / f"{name}.jpg", quality=85, optimize=True)
        page.close()
    b.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--each", type=int, default=3, help="requests per client in the load test")
    ap.add_argument("--webcam-seconds", type=float, default=12)
    ap.add_argument("--screenshots", type=Path, default=None)
    args = ap.parse_args()
    head = machine()
    rows = []
    for engine in ("torch", "int8"):
        row, server = server_vs_cli(portrait(1024), args.repeats, engine)
        rows.append(row)
        if engine != "int8":
            server.__exit__(None, None, None)
    try:
        web = browser(server, portrait(512), args.webcam_seconds, args.screenshots)
    finally:
        server.__exit__(None, None, None)
    rep = load(portrait(512), args.clients, args.each)
    text = "# brushwork serve\n\n`PYTHONPATH=src python benchmarks/bench_web.py` (loopback only). " + head + "\n\n"
    text += (f"## Starry Night (the shipped CIN net) at 1024 px: server vs a warm process ({args.repeats} runs each, "
             "interleaved)\n\n")
    text += table(rows)
    text += "\n## In-browser (headless Debian chromium, onnxruntime-web, the shipped CIN INT8 export)\n\n"
    text += table([web])
    text += (f"\n## Load: {args.clients} concurrent clients x {args.each} requests, 512 px, one worker, queue 8\n\n")
    lat = {k: rep[k] for k in ("requests", "wall_s", "p50_ms", "p90_ms", "p99_ms", "max_ms")}
    text += table([{**lat, "statuses": ", ".join(f"{k}: {v}" for k, v in rep["statuses"].items()),
                    "errors": len(rep["errors"]), "RSS idle / peak MB": f"{rep['rss_idle_mb']:.0f} / "
                    f"{rep['rss_peak_mb']:.0f}", "up after": rep["up_after"]}])
    text += "\nLatencies are of the answered (200) requests, from the client: queueing included.\n"
    write_report(text, args.out)


if __name__ == "__main__":
    main()
