"""The fused CPU kernels' build (`cpu_kernels._build`) after a build that was killed.

torch's extension builder marks a build in progress with a file, `lock`, in the build folder, and every other
process sleeps until it is gone; a build killed midway (SIGKILL, a timeout, the OOM killer) leaves it behind,
and before `cpu_kernels._sole_builder` every later process hung at its first HyperLSTM step, for ever and
without a word (seen: a fresh extension folder, the suite under torch 2.11, two workers asleep for minutes).
"""

import fcntl
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from torch.utils import cpp_extension

from hyperfairseq.modules import cpu_kernels


def _built_folder():
    """The build folder of this process's kernels (built, or the test fails here)."""
    assert cpu_kernels.ops() is not None, f"the fused CPU kernels did not build: {cpu_kernels._state['error']}"
    return cpp_extension._get_build_directory(cpu_kernels._extension_name(cpu_kernels._flags()[0]), False)


def test_each_torch_and_python_version_builds_in_its_own_folder():
    """Two environments sharing an extension folder (TORCH_EXTENSIONS_DIR, or torch's default, which holds
    Python and CUDA versions apart but not torch's), with other torch versions or the same one installed
    elsewhere, or two checkouts sharing one environment, get two folders: neither rebuilds over, nor loads, the
    other's library. The folder this process built in is the one named."""
    built = _built_folder()
    assert os.path.basename(built) == cpu_kernels._extension_name(cpu_kernels._flags()[0])
    assert any(name.endswith(".so") for name in os.listdir(built))
    names = {cpu_kernels._extension_name("avx2", python, version, place, Path(source))
             for python in ((3, 11), (3, 12)) for version in ("2.11.0+cu130", "2.14.1+cu130")
             for place in ("/a/.venv/lib/torch", "/b/.venv/lib/torch")  # two checkouts' venvs: no rebuilds
             for source in ("/a/hyperfairseq/modules/csrc/x.cpp", "/b/hyperfairseq/modules/csrc/x.cpp")}
    assert len(names) == 16 and any(n.startswith("hyperfairseq_cell_avx2_py312_torch2_11_0_cu130_") for n in names)


def test_a_lock_left_by_a_killed_build_is_cleared_and_the_kernels_load(tmp_path):
    """A copy of the built folder with the lock file a killed build leaves: a new process loads the kernels.
    Under torch with FileBaton (2.11 and earlier: scripts/compat_gpu_versions.sh runs this under 2.11) it says it
    removed the lock, and none is left; torch 2.14 locks the folder with an OS lock and ignores the file, and the guard
    stands aside (no warning). Without the guard, torch 2.11 sleeps for ever: the timeout (240 s against the ~5 s
    of an import and a no-op ninja, or ~30 s of a rebuild) is what turns that hang into a failure."""
    built = _built_folder()
    ext = tmp_path / "ext"
    folder = ext / os.path.basename(built)
    shutil.copytree(built, folder)
    (folder / "lock").touch()
    code = "from hyperfairseq.modules import cpu_kernels; assert cpu_kernels.ops() is not None; print('loaded')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                          env={**os.environ, "TORCH_EXTENSIONS_DIR": str(ext), "PYTHONWARNINGS": "always"})
    assert proc.returncode == 0 and "loaded" in proc.stdout, proc.stderr[-3000:]
    warned = f"removed {folder / 'lock'}, left by a build of the fused CPU kernels that was killed" in proc.stderr
    if hasattr(cpp_extension, "FileBaton"):
        assert warned and not (folder / "lock").exists(), proc.stderr[-3000:]
    else:
        assert not warned, proc.stderr[-3000:]


def test_a_lock_is_not_taken_for_stale_while_another_process_builds(tmp_path):
    """While another holder has the folder's flock (a build in progress: its `lock` is live), a second builder
    waits on the flock and leaves that lock alone; once the holder is gone, the lock it left is stale and goes.
    (An flock taken through a second open file conflicts even within one process, so a thread stands in for
    the second process.) The 0.5 s wait can only make a broken guard pass, never a sound one fail."""
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / "lock").touch()
    entered = threading.Event()

    def second_builder():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with cpu_kernels._sole_builder(str(folder)):
                entered.set()
        second_builder.caught = [str(w.message) for w in caught]

    with open(folder / "hyperfairseq.flock", "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        thread = threading.Thread(target=second_builder, daemon=True)
        thread.start()
        assert not entered.wait(0.5), "a second builder went ahead while the first held the flock"
        assert (folder / "lock").exists(), "the live build's lock file was removed"
        fcntl.flock(holder, fcntl.LOCK_UN)
    thread.join(60)
    assert entered.is_set() and not (folder / "lock").exists()
    assert any("left by a build of the fused CPU kernels that was killed" in m for m in second_builder.caught)


def test_a_file_system_without_flock_builds_as_before(tmp_path, monkeypatch):
    """flock refused (ENOLCK on some NFS mounts): the build goes ahead under torch's lock file alone, and a lock
    file there is left to torch (without the flock nothing proves it stale)."""
    def refuse(handle, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    (tmp_path / "lock").touch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with cpu_kernels._sole_builder(str(tmp_path)):
            pass
    assert (tmp_path / "lock").exists()
