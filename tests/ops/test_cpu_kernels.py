"""The native kernels' loader (ops/cpu_kernels/__init__.py): built once per machine, then loaded; safe when
processes start at once, and when a killed build left torch's lock file behind; a failed build falls back with one
warning (these run without a compiler too)."""

import os
import shutil
import subprocess
import sys
import time
import warnings

import pytest
import torch
from torch.utils import cpp_extension

from memory_mosaics.ops import cpu_kernels, key_path, native_paths

needs_build = pytest.mark.skipif(not cpu_kernels.available(),
                                 reason=f"native CPU kernels not available: {cpu_kernels.unavailable_reason()}")

PROBE = ("from memory_mosaics.ops import cpu_kernels; import torch; "
         "assert cpu_kernels.available(), cpu_kernels.unavailable_reason(); "
         "print(torch.ops.memory_mosaics.key_path_forward)")


def probe(ext_dir, timeout):
    env = dict(os.environ, TORCH_EXTENSIONS_DIR=str(ext_dir), OMP_NUM_THREADS="1")
    env.pop(cpu_kernels.ENV, None)
    return subprocess.Popen([sys.executable, "-c", PROBE], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True), timeout


def finish(proc_timeout):
    proc, timeout = proc_timeout
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    assert "key_path_forward" in out, out


def built_library(build_dir):
    return build_dir / f"{build_dir.name}.so"


@needs_build
def test_a_lock_file_left_by_a_killed_build_does_not_hang_the_next_process(tmp_path):
    """torch's loader waits while `lock` exists; a build killed mid-way leaves it for ever. The loader's flock
    proves no live process holds it, so it is removed. The cached build is copied: no rebuild happens."""
    name = cpu_kernels.extension_name()
    src = cpp_extension._get_build_directory(name, verbose=False)
    dst = tmp_path / name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("lock", "*.flock"))
    so = built_library(dst)
    assert so.is_file()
    before = so.stat().st_mtime_ns
    (dst / "lock").touch()
    finish(probe(tmp_path, timeout=120))
    assert not (dst / "lock").exists()
    assert so.stat().st_mtime_ns == before  # loaded from the cache, not rebuilt


@needs_build
@pytest.mark.slow
def test_processes_that_start_at_once_build_once(tmp_path):
    """Two fresh processes, an empty extensions folder: one builds (~30 s), the other waits and loads it."""
    start = time.monotonic()
    procs = [probe(tmp_path, timeout=600) for _ in range(2)]
    for p in procs:
        finish(p)
    so = built_library(tmp_path / cpu_kernels.extension_name())
    assert so.is_file()
    log = (tmp_path / cpu_kernels.extension_name() / ".ninja_log").read_text().splitlines()
    assert sum(line.endswith(".so") or ".so\t" in line for line in log) == 1, log  # linked once
    print(f"two processes, one build: {time.monotonic() - start:.1f} s")


def test_a_failed_build_warns_once_and_falls_back(monkeypatch):
    def broken():
        raise RuntimeError("Error building extension 'x'\nc++: error: no compiler here")

    monkeypatch.delenv(cpu_kernels.ENV, raising=False)  # the suite may run with the kernels off
    monkeypatch.setattr(cpu_kernels, "_loaded", None)
    monkeypatch.setattr(cpu_kernels, "_reason", "")
    monkeypatch.setattr(cpu_kernels, "_build_and_load", broken)
    with pytest.warns(RuntimeWarning, match="native CPU kernels unavailable .*no compiler here"):
        assert not cpu_kernels.available()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not cpu_kernels.available()  # decided once per process: no second warning
    assert not caught
    assert "no compiler here" in cpu_kernels.unavailable_reason()
    assert not native_paths.native_ok(torch.randn(1, 1, 2, 2))
    y = key_path.leaky_normalize(torch.randn(1, 2, 5, 3), torch.rand(2), torch.rand(2), 16)  # the PyTorch scan
    assert y.shape == (1, 2, 5, 3)


def test_a_failed_build_under_warnings_as_errors_still_falls_back(monkeypatch, capsys):
    monkeypatch.delenv(cpu_kernels.ENV, raising=False)
    monkeypatch.setattr(cpu_kernels, "_loaded", None)
    monkeypatch.setattr(cpu_kernels, "_reason", "")
    monkeypatch.setattr(cpu_kernels, "_build_and_load", lambda: 1 / 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not cpu_kernels.available()
    assert "native CPU kernels unavailable (ZeroDivisionError" in capsys.readouterr().err


def test_ninja_is_found_without_an_activated_venv(monkeypatch, tmp_path):
    """torch runs `ninja` from PATH; with a venv's interpreter but not its bin/ on PATH, the loader adds it."""
    pytest.importorskip("ninja", reason="the ninja package is not installed")
    import shutil

    monkeypatch.setenv("PATH", str(tmp_path))
    assert shutil.which("ninja") is None
    with cpu_kernels._ninja_on_path():
        assert shutil.which("ninja") is not None
    assert shutil.which("ninja") is None


def test_calling_a_native_path_without_the_kernels_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(cpu_kernels.ENV, "0")
    with pytest.raises(RuntimeError, match="native CPU kernels are unavailable .*MEMORY_MOSAICS_NATIVE=0"):
        native_paths.native_key_path(torch.randn(1, 1, 2, 2), torch.ones(1), torch.ones(1))
    with pytest.raises(RuntimeError, match="native CPU kernels are unavailable"):
        native_paths.native_value_path(torch.randn(1, 1, 2, 2), torch.ones(1))
