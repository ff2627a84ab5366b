"""Integration runs share a 2-core machine with other jobs: torch's default of one thread per core
oversubscribes it (spinning OpenMP workers made these tests ~4x slower under load), so each module
runs with ``$BRUSHWORK_TEST_THREADS`` torch threads (default 1) and restores the setting after."""

from __future__ import annotations

import os

import pytest

from brushwork.runtime import inference_threads


@pytest.fixture(scope="module", autouse=True)
def _torch_threads():
    with inference_threads(int(os.environ.get("BRUSHWORK_TEST_THREADS", "1"))):
        yield
