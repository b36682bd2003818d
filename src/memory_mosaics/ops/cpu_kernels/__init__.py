"""Native CPU kernels for the key path and the value path (C++, ATen only), built at first use.

Each kernel is one pass over (B, H, T, d_h) per direction, `at::parallel_for` over the B·H rows (so
`torch.set_num_threads` applies), for float32 and float64; ops/native_paths.py wraps them in autograd Functions.

Built with torch's JIT loader (`torch.utils.cpp_extension.load`, ninja + the system C++ compiler, plain -O3: no
-march=native, so a cache shared across machines stays valid) into TORCH_EXTENSIONS_DIR (default
~/.cache/torch_extensions/py3X_cpu/), under a name that hashes the sources and the torch version: a build is
made once per machine and version, then each process only loads it. Processes that start at once build it once:
an flock here serialises them (the kernel releases it if the holder dies, so torch's own lock file, which a killed
build would leave behind for ever, is removed when found stale).

`available()` is False — with one warning per process, never an error — when the build or the load fails (no
compiler, no ninja, an unwritable cache) or MEMORY_MOSAICS_NATIVE=0; callers then take the PyTorch paths.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import threading
import warnings
from pathlib import Path

import torch

ENV = "MEMORY_MOSAICS_NATIVE"  # "0" turns the native kernels off (read at every call)
SOURCES = ("register.cpp", "key_path.cpp", "value_path.cpp")
_HERE = Path(__file__).resolve().parent
_lock = threading.Lock()
_loaded: bool | None = None  # None: not tried yet in this process
_reason = ""


def disabled_by_env() -> bool:
    return os.environ.get(ENV, "1").strip() == "0"


def available() -> bool:
    """Whether the native ops can be called now: not disabled by the environment, built and loaded."""
    if disabled_by_env():
        return False
    if _loaded is None:
        with _lock:
            if _loaded is None:
                _load()
    return bool(_loaded)


def unavailable_reason() -> str:
    """Why `available()` is False ('' when it is True or was never asked)."""
    if disabled_by_env():
        return f"{ENV}=0"
    return _reason


def extension_name() -> str:
    """The build's name: the sources' and torch's version hashed, so a changed kernel or torch builds anew."""
    h = hashlib.sha256(torch.__version__.encode())
    for name in SOURCES + ("common.h",):
        h.update((_HERE / name).read_bytes())
    return f"memory_mosaics_cpu_{h.hexdigest()[:12]}"


def _load() -> None:
    global _loaded, _reason
    try:
        _build_and_load()
        _loaded = True
    except Exception as e:  # noqa: BLE001 — any failure means: use the PyTorch paths
        _loaded = False
        lines = str(e).strip().splitlines() or [type(e).__name__]
        first = next((l for l in lines if "error" in l.lower() and l is not lines[0]), lines[0]).strip()[:200]
        _reason = f"{type(e).__name__}: {first}"
        msg = f"memory_mosaics: native CPU kernels unavailable ({_reason}); using the PyTorch paths (set {ENV}=0 to skip the build)"
        try:
            warnings.warn(msg, RuntimeWarning, stacklevel=3)
        except Warning:  # warnings made errors (-W error): the fallback must not crash; say it on stderr instead
            print(msg, file=sys.stderr)


def _build_and_load() -> None:
    from torch.utils import cpp_extension

    name = extension_name()
    build_dir = cpp_extension._get_build_directory(name, verbose=False)
    if not any(Path(build_dir).glob(f"{name}*{cpp_extension.LIB_EXT}")):  # a first build blocks for ~20 s: say why, once
        print(f"memory_mosaics: building the native CPU kernels once for this machine and torch version (~20 s; "
              f"{ENV}=0 skips them)", file=sys.stderr, flush=True)
    with _ninja_on_path(), _exclusive(Path(build_dir)):
        cpp_extension.load(name=name, sources=[str(_HERE / s) for s in SOURCES], extra_cflags=["-O3"],
                           build_directory=build_dir, is_python_module=False, verbose=False)
    if not hasattr(torch.ops.memory_mosaics, "key_path_forward"):
        raise RuntimeError("the library loaded but registered no ops")
    _register_fakes()


OPS = ("key_path_forward", "key_path_backward", "value_path_forward", "value_path_backward")


def _register_fakes() -> None:
    """Under FakeTensorMode (memory estimators, non-strict export) the ops only fill outputs the caller allocated:
    nothing to compute (without this, fake mode runs the real kernel on zero-filled stand-ins)."""
    register = getattr(torch.library, "register_fake", None)  # torch ≥ 2.4
    if register is None:
        return
    for name in OPS:
        register(f"memory_mosaics::{name}")(lambda *args, **kwargs: None)


@contextlib.contextmanager
def _ninja_on_path():
    """torch runs `ninja` from PATH: when it is not there (a venv used without activating it), add the pip
    package's binary directory, or the running interpreter's bin/, for the build only."""
    if shutil.which("ninja") is not None:
        yield
        return
    extra = [str(Path(sys.executable).parent)]
    with contextlib.suppress(ImportError, AttributeError):
        import ninja

        extra.insert(0, ninja.BIN_DIR)
    old = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join(extra + [old])
    try:
        yield
    finally:
        os.environ["PATH"] = old


@contextlib.contextmanager
def _exclusive(build_dir: Path):
    """One process at a time in torch's loader for this build. While we hold the flock, a torch lock file in the
    build directory can only be left over from a killed build: remove it rather than wait on it for ever."""
    try:
        import fcntl
    except ImportError:  # not POSIX: torch's lock file alone
        yield
        return
    with open(build_dir / "memory_mosaics.flock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            with contextlib.suppress(FileNotFoundError):
                (build_dir / "lock").unlink()
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
