"""The fused CPU cell kernels (`csrc/hyperlstm_cell.cpp`), compiled on first use by torch's extension builder.

`ops()` returns `torch.ops.hyperfairseq` once the kernels are built and loaded, or None when they
cannot be (no C++ compiler or ninja, a build error, or HYPERFAIRSEQ_CPU_KERNELS=0); the fast path
then does not apply on CPU and `HyperLSTM` runs the reference path (the same mathematics, slower). The first build
takes ~10-20 s and is cached by torch (TORCH_EXTENSIONS_DIR, default ~/.cache/torch_extensions), in one folder
per CPU code, Python version and torch installation (`_extension_name`).
"""

import contextlib
import hashlib
import logging
import os
import re
import shutil
import sys
import threading
import warnings
from pathlib import Path
from typing import Iterator, Optional

try:
    import fcntl
except ImportError:  # not POSIX: torch's own lock file alone guards the build
    fcntl = None

import torch

ENV = "HYPERFAIRSEQ_CPU_KERNELS"
SOURCE = Path(__file__).with_name("csrc") / "hyperlstm_cell.cpp"
DTYPES = (torch.float32, torch.float64)

_lock = threading.Lock()
_state = {"tried": False, "error": None}


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def _flags():
    """Compile for AVX2 where the CPU has it (ATen's Vectorized with Sleef's exp/tanh), portable C++ otherwise."""
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        return "avx2", ["-O3", "-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"]
    return "default", ["-O3"]


def _extension_name(tag: str, python=tuple(sys.version_info[:2]), torch_version: str = torch.__version__,
                    torch_dir: str = os.path.dirname(torch.__file__), source: Path = SOURCE) -> str:
    """The library's name, which names its build folder too: per CPU code (`tag`), Python and torch version,
    torch's installation and the source file's place (8 hex digits of a hash of the two folders).

    torch's default folder tells Python and CUDA versions apart but not torch's (TORCH_EXTENSIONS_DIR tells none):
    two environments with different torch that share it rebuilt the library against their own headers at every
    switch, and a process of one could load the other's build. Two environments with the same torch in other
    folders (two checkouts' .venv) did the same: the build file names the headers' folder, so each switch was a
    rebuild of ~20-30 s. So did two checkouts sharing one .venv (the build file names the source's path too).
    """
    place = hashlib.sha1(f"{os.path.realpath(torch_dir)}\0{os.path.realpath(source)}".encode()).hexdigest()[:8]
    version = re.sub(r"[^0-9A-Za-z]+", "_", torch_version)
    return f"hyperfairseq_cell_{tag}_py{python[0]}{python[1]}_torch{version}_{place}"


@contextlib.contextmanager
def _sole_builder(build_directory: Optional[str]) -> Iterator[None]:
    """Hold an advisory lock on the build folder (`hyperfairseq.flock`) for the build, and clear a stale torch lock.

    torch's builder where it uses `cpp_extension.FileBaton` (2.11, the GPU machine's, and earlier) marks a build with a
    file, `lock`, which its holder removes when done; every other process sleeps until that file is gone. A
    process killed during its build (SIGKILL, a timeout, the OOM killer; its ninja may even finish the library)
    leaves the file behind, and every later process that uses the kernels then hangs at its first step, silently
    and for ever. An flock is released by the kernel however its holder ends: under it no other process of this
    package is building, so a `lock` file found there was left by a killed build; it is removed, with a warning,
    before torch looks for it. (torch 2.14 holds such an OS lock on `lock` itself: `_build` passes None there.)
    """
    if fcntl is None or build_directory is None:
        yield
        return
    with open(os.path.join(build_directory, "hyperfairseq.flock"), "a") as handle:  # torch made the folder
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a file system without flock (some NFS mounts): torch's lock file alone, as before
            yield
            return
        try:
            stale = os.path.join(build_directory, "lock")
            if os.path.exists(stale):
                warnings.warn(f"hyperfairseq: removed {stale}, left by a build of the fused CPU kernels that was "
                              "killed; building again")
                os.remove(stale)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build() -> None:
    # the builder's import warns about CUDA_HOME (irrelevant to a CPU-only build), its lock logs at DEBUG
    loggers = [logging.getLogger(name) for name in ("torch.utils.cpp_extension", "filelock")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    path = os.environ.get("PATH", "")
    if shutil.which("ninja") is None:  # the pip package's binary, when its bin folder is not on PATH
        try:
            import ninja

            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + path
        except ImportError:
            pass
    try:
        from torch.utils import cpp_extension

        tag, flags = _flags()
        name = _extension_name(tag)
        # torch with FileBaton (2.11 and earlier) waits on a lock file in the folder it builds in (TORCH_EXTENSIONS_DIR,
        # else its cache per Python and CUDA version): guard that folder; 2.14 locks it robustly itself
        guarded = cpp_extension._get_build_directory(name, False) if hasattr(cpp_extension, "FileBaton") else None
        with _sole_builder(guarded):
            # OpenMP for at::parallel_for: libgomp.so.1 resolves to the copy torch has already loaded
            cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=flags + ["-fopenmp"],
                               extra_ldflags=["-fopenmp"], with_cuda=False, is_python_module=False, verbose=False)
    finally:
        os.environ["PATH"] = path
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def ops() -> Optional[object]:
    """torch.ops.hyperfairseq with `cell_forward` / `cell_backward`, or None (see the module docstring)."""
    if not enabled():
        return None
    if not _state["tried"]:
        with _lock:
            if not _state["tried"]:
                try:
                    _build()
                except Exception as err:  # a missing compiler, ninja or header: fall back, say why once
                    message = str(err).strip()
                    _state["error"] = f"{type(err).__name__}: {message.splitlines()[-1] if message else ''}"
                    warnings.warn(f"hyperfairseq: fused CPU kernels unavailable ({_state['error']}); "
                                  f"HyperLSTM runs its (slower) reference path on CPU. Set {ENV}=0 to silence this.")
                _state["tried"] = True
    return None if _state["error"] else torch.ops.hyperfairseq


def applies(x: torch.Tensor) -> bool:
    """Whether the fused kernels run for this input: CPU, float32/float64, and built."""
    return x.device.type == "cpu" and x.dtype in DTYPES and ops() is not None
