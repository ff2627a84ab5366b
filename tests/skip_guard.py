"""A pytest plugin: a skipped test is a failed test, unless it needs hardware this machine lacks (a GPU).

The suite must run whole on a fresh CPU-only clone (issue 18): a test that quietly skips because an image
folder, an optional dependency or a file is missing tests nothing while the summary still looks green. So
every skip, of a test or of a whole module (``pytest.importorskip``), becomes a failure here, except one
whose reason names a GPU or CUDA (``pytest.skip("needs a CUDA GPU")``, ``skipif(..., reason="this machine
has CUDA")``); expected failures (xfail) are left alone. ``BRUSHWORK_ALLOW_SKIPS=1`` turns the guard off
for a local run on a machine that lacks something on purpose. ``tests/conftest.py`` loads this plugin,
so the README's ``python -m pytest -q``, which is what ``.ci/run`` runs, enforces it.
"""

from __future__ import annotations

import os
import re

import pytest

#: A skip whose reason matches this is allowed: it needs hardware that this machine does not have.
ALLOWED_SKIP = re.compile(r"\b(gpus?|cuda)\b", re.IGNORECASE)

HINT = ("only tests that need a GPU may skip (say so in the reason: 'needs a CUDA GPU'); give the test what it "
        "needs (tests/media.py makes photos and paintings), or set BRUSHWORK_ALLOW_SKIPS=1 for a local run")


def _enabled() -> bool:
    return os.environ.get("BRUSHWORK_ALLOW_SKIPS", "").strip().lower() in ("", "0", "no", "false")


def _reason(longrepr) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        path, line, reason = longrepr
        return f"{reason} ({path}:{line})"
    return str(longrepr)


def unexpected(report) -> str | None:
    """The skip reason of ``report`` when it is a skip the guard refuses, else None."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return None
    reason = _reason(report.longrepr)
    return None if ALLOWED_SKIP.search(reason) else reason


def _fail(report, reason: str) -> None:
    report.outcome = "failed"
    report.longrepr = f"unexpected skip: {reason}\n{HINT}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    reason = unexpected(report) if _enabled() else None
    if reason is not None:
        _fail(report, reason)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    reason = unexpected(report) if _enabled() else None
    if reason is not None:  # a module skipped at import (importorskip): a collection error
        _fail(report, reason)
    return report
