"""What the GPU check's first Triton launch and first fairseq-train need, one recorded line per check.

The env stage of `gpu_check.sh` (after nvidia-smi and `command -v cc gcc`: Triton builds its launcher
stubs with the system C compiler at the first launch): the versions of torch, triton, numpy, CUDA and
fairseq; one launch of a trivial `@triton.jit` kernel on the device, its result checked; and the import
of fairseq's C extensions that its data pipeline needs (`data_utils_fast`, `token_block_utils_fast`).
Every check runs whatever the others did, and prints `name: ok ...` or `name: FAILED ...`; the exit
status is the number of failed checks (the script's later stages run anyway).

    python benchmarks/device_env.py --device cuda
    TRITON_INTERPRET=1 python benchmarks/device_env.py --device cpu     # the dry run
"""

import argparse
import importlib
import sys
import time
import traceback

try:  # a failed import is reported by the checks (one line each), not here
    import triton
    import triton.language as tl
except ImportError:
    triton = None

if triton is not None:
    @triton.jit
    def add_one(x_ptr, n, BLOCK: tl.constexpr):
        """x[:n] += 1, one BLOCK of x a program (defined at module level: Triton reads the kernel's globals)."""
        offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        keep = offsets < n
        tl.store(x_ptr + offsets, tl.load(x_ptr + offsets, mask=keep) + 1.0, mask=keep)


def versions() -> str:
    import fairseq
    import numpy
    import torch

    if triton is None:
        importlib.import_module("triton")  # raises the import's own error
    return (f"torch {torch.__version__}, triton {triton.__version__}, numpy {numpy.__version__}, "
            f"cuda {torch.version.cuda}, fairseq {fairseq.__version__}")


def triton_launch(device: str) -> str:
    """One launch of a trivial kernel (x + 1 over 1000 elements, 4 programs), compiled on an empty cache."""
    import torch

    if triton is None:
        importlib.import_module("triton")  # raises the import's own error
    x = torch.zeros(1000, device=device)
    start = time.perf_counter()
    add_one[(triton.cdiv(1000, 256),)](x, 1000, BLOCK=256)
    total = float(x.sum())  # waits for the kernel
    if total != 1000.0:
        raise AssertionError(f"x + 1 summed to {total}, not 1000")
    return f"{time.perf_counter() - start:.1f} s (compile and launch)"


def fairseq_extensions() -> str:
    names = ("fairseq.data.data_utils_fast", "fairseq.data.token_block_utils_fast")
    return ", ".join(importlib.import_module(name).__name__ for name in names)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    checks = {"versions": versions, "triton launch": lambda: triton_launch(args.device),
              "fairseq C extensions": fairseq_extensions}
    failed = 0
    for name, check in checks.items():
        try:
            print(f"{name}: ok {check()}", flush=True)
        except Exception as err:  # recorded; the next check still runs
            failed += 1
            where = " <- ".join(traceback.format_exc().strip().splitlines()[-3:-1])
            print(f"{name}: FAILED {type(err).__name__}: {err} ({where})"[:2000], flush=True)
    return failed


if __name__ == "__main__":
    sys.exit(main())
