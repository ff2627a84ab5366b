"""``brushwork serve``: the web studio on this machine (loopback only unless --host says otherwise)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from brushwork.cli.options import positive_int

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="a local web studio: drop a photo, pick a style (needs brushwork[web])")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=positive_int, default=8000)
    p.add_argument("--max-upload-mb", type=positive_int, default=25, help="largest request body (default 25 MB)")
    p.add_argument("--max-megapixels", type=positive_int, default=50,
                   help="largest uploaded image, checked before decoding (default 50)")
    p.add_argument("--max-size", type=positive_int, default=2048, help="largest output side in px (default 2048)")
    p.add_argument("--max-steps", type=positive_int, default=500, help="an optimization job's step cap (default 500)")
    p.add_argument("--max-job-minutes", type=float, default=15.0, help="an optimization job's time cap (default 15)")
    p.add_argument("--queue", type=positive_int, default=8, help="one-pass requests that may wait (default 8)")
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="allow scripts on this origin to call the API (default: none)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (default cpu)")


def run(args: argparse.Namespace) -> int:
    from brushwork.errors import ConfigError

    try:
        import uvicorn

        from brushwork.web.app import ServerConfig, create_app
    except ImportError as exc:
        raise ConfigError(f"the web studio needs its extra: pip install 'brushwork[web]' ({exc.name} is missing)"
                          ) from None
    config = ServerConfig(max_upload_bytes=args.max_upload_mb * 1024 * 1024,
                          max_pixels=args.max_megapixels * 1_000_000, max_size=args.max_size,
                          max_steps=args.max_steps, max_job_seconds=args.max_job_minutes * 60,
                          max_waiting=args.queue, cors_origins=list(args.cors_origin), device=args.device)
    if args.host not in LOOPBACK:
        print(f"brushwork: note: --host {args.host} lets every machine that can reach this one upload photos and "
              "run stylizations here (no login, no TLS)", file=sys.stderr)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"brushwork studio: http://{shown}:{args.port}/  (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="warning")
    return 0
