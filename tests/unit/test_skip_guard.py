"""The skip guard (tests/skip_guard.py): in a small pytest run of its own, a skip fails unless it needs a GPU."""

from __future__ import annotations

import pytest

INNER = '''
import pytest

def test_plain_skip():
    pytest.skip("image data folder not found")

def test_gpu_skip():
    pytest.skip("needs a CUDA GPU")

@pytest.mark.skipif(True, reason="this machine has CUDA")
def test_skipif_cuda():
    pass

@pytest.mark.skipif(True, reason="slow on this platform")
def test_skipif_other():
    pass

@pytest.fixture
def data():
    pytest.skip("test images missing")

def test_fixture_skip(data):
    pass

@pytest.mark.xfail(reason="a known bug")
def test_expected_failure():
    assert False

def test_passes():
    pass
'''


def test_skips_fail_unless_they_need_a_gpu(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("BRUSHWORK_ALLOW_SKIPS", raising=False)
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_inprocess("-p", "skip_guard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=2, failed=1, errors=2, xfailed=1)  # setup-time skips: errors
    result.stdout.fnmatch_lines(["*unexpected skip: Skipped: image data folder not found*",
                                 "*only tests that need a GPU may skip*"])
    assert result.ret != 0


def test_a_module_skipped_at_import_is_an_error(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv("BRUSHWORK_ALLOW_SKIPS", raising=False)
    pytester.makepyfile(test_mod='import pytest\n\npytest.importorskip("no_such_module_xyz")\n')
    result = pytester.runpytest_inprocess("-p", "skip_guard", "-p", "no:cacheprovider")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unexpected skip*no_such_module_xyz*"])


def test_allow_skips_turns_it_off(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("BRUSHWORK_ALLOW_SKIPS", "1")
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_inprocess("-p", "skip_guard", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=5, xfailed=1)
    assert result.ret == 0
