"""A small loopback load test: 20 concurrent clients against one bounded worker; every request is answered
(200, or 429/503 with Retry-After and a JSON error), the server stays up and its queue drains."""

from __future__ import annotations

import resource

from conftest import jpeg_bytes

from brushwork.web.app import ServerConfig
from brushwork.web.local import LocalServer, load_test


def test_twenty_clients_every_request_answered(small_photo):
    with LocalServer(ServerConfig(max_waiting=4)) as server:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report = load_test(server.url, jpeg_bytes(small_photo.resize((128, 96))), clients=20, each=1,
                           data={"style": "udnie", "size": "128"})
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert report["requests"] == 20 and not report["errors"], report
        assert set(report["statuses"]) <= {"200", "429", "503"} and report["statuses"].get("200", 0) >= 2, report
        assert grown_mb < 400, f"peak memory grew by {grown_mb:.0f} MB"
        import httpx

        health = httpx.get(f"{server.url}/api/health").json()
        assert health["ok"] and health["waiting"] == 0
