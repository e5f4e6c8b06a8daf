"""The fused layer's CPU GEMMs through MKL and through oneDNN, side by side: which library is faster here.

`HYPERFAIRSEQ_CPU_GEMM=auto` (the default) picks oneDNN for the per-step GEMM on every CPU and for the wide
GEMMs (`kernels.wide_mm`, `kernels.BlockGemm`) only where ATen runs AVX-512 code (`kernels._onednn`). This
script times each kind of GEMM of a train step at the benchmark sizes through both libraries (one thread,
process CPU time, medians of interleaved rounds) and records the GFLOP/s of each and the choice `auto`
makes, so a record from a new CPU shows whether the rule holds there.

    python benchmarks/bench_cpu_gemm.py --json docs/runs/bench_cpu_gemm_<cpu>.json
"""

import argparse
import contextlib
import functools
import os
import statistics
import sys
import time

import torch

from hyperfairseq import run_record
from hyperfairseq.modules import kernels
from hyperfairseq.modules.fused_loops import KERNEL_MAX_NZ

SIZES = {"ptb": (64, 1000, 128, 4), "enwik8": (64, 1800, 256, 64),  # N_x, N_h, N_ĥ, N_z
         "tiny": (8, 16, 8, 17)}  # code paths only (the tests), N_z past KERNEL_MAX_NZ for the blocks
WIDE_KINDS = ("weight gradient", "input data gradient", "z -> d blocks", "d -> z blocks")


def gemm_cases(size, batch, steps):
    """name -> (build, multiply-adds); `build()` sets the GEMM up under the library chosen now (packing a
    weight where oneDNN takes it) and returns a call that does one GEMM, and whether oneDNN runs it (below
    the kernels' size thresholds MKL does, whatever the choice)."""
    n_x, n, n_hat, n_z = SIZES[size]
    rows, g = steps * batch, 4 * (n + n_hat)  # the per-step weight [W_h; Ŵ_x,h] has g rows (fused_loops.Scratch)
    w_cat, h, e = torch.randn(g, n), torch.randn(batch, n), torch.randn(batch, g)
    big_e, big_h, w_x = torch.randn(rows, g), torch.randn(rows, n), torch.randn(4 * n, n_x)
    main_e = big_e[:, :4 * n].contiguous()

    def packed(gemm_class, weight, a, out):
        def build():
            gemm = gemm_class(weight, batch, steps)
            return functools.partial(gemm, a, out), gemm.packed is not None
        return build

    def step(weight, a):
        return packed(kernels.StepGemm, weight, a, torch.empty(batch, weight.shape[0]))

    def blocks(weight, a):
        return packed(kernels.BlockGemm, weight, a, torch.empty(12, batch, weight.shape[2]))

    def wide(a, b):
        return lambda: (functools.partial(kernels.wide_mm, a, b), kernels.wide_onednn(a, b))

    cases = {
        "per-step forward": (step(w_cat, h), batch * n * g),
        "per-step backward": (step(w_cat.t().contiguous(), e), batch * n * g),
        "weight gradient": (wide(big_e.t(), big_h), rows * g * n),
        "input data gradient": (wide(main_e, w_x), rows * 4 * n * n_x),
    }
    if n_z > KERNEL_MAX_NZ:  # d = z W_d by kernels.BlockGemm (Eq. 12's twelve maps)
        w_d = torch.randn(12, n_z, n)
        cases["z -> d blocks"] = (blocks(w_d, torch.randn(12, batch, n_z)), 12 * batch * n_z * n)
        cases["d -> z blocks"] = (blocks(w_d.transpose(1, 2), torch.randn(12, batch, n)), 12 * batch * n_z * n)
    return cases


def seconds_per_call(fn, min_seconds):
    fn()  # warm-up: oneDNN's primitive cache
    calls, start = 0, time.process_time()
    while time.process_time() - start < min_seconds:
        fn()
        calls += 1
    return (time.process_time() - start) / calls


@contextlib.contextmanager
def library(name):
    """`HYPERFAIRSEQ_CPU_GEMM=name` inside (the kernels read it at every call)."""
    previous = os.environ.get(kernels.GEMM_ENV)
    os.environ[kernels.GEMM_ENV] = name
    try:
        yield
    finally:
        if previous is None:
            del os.environ[kernels.GEMM_ENV]
        else:
            os.environ[kernels.GEMM_ENV] = previous


def bench_case(build, macs, rounds, min_seconds):
    times, ran = {"mkl": [], "onednn": []}, {}
    for _ in range(rounds):  # interleaved: a change in the machine's load hits both libraries alike
        for name, seconds in times.items():
            with library(name):
                fn, ran[name] = build()
                seconds.append(seconds_per_call(fn, min_seconds))
    row = {f"{name}_gflops": 2 * macs / statistics.median(t) / 1e9 for name, t in times.items()}
    return {**row, "onednn_ran": ran["onednn"] and not ran["mkl"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="ptb,enwik8")
    parser.add_argument("--batches", default="32,128")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=0.5, help="CPU time per measurement")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return measure(args, argv)
    finally:
        torch.set_num_threads(threads)


def measure(args, argv):
    torch.manual_seed(0)
    with library("auto"):
        auto = kernels.cpu_gemm_libraries()
    command = " ".join(["python benchmarks/bench_cpu_gemm.py", *(argv if argv is not None else sys.argv[1:])])
    result = run_record.stamp(command, hardware=f"{run_record.cpu_model()}, 1 thread(s)", torch=torch.__version__,
                              cpu_capability=torch.backends.cpu.get_cpu_capability(), auto=auto,
                              clock="process", rounds=args.rounds, gemms={})
    for size in args.sizes.split(","):
        for batch in map(int, args.batches.split(",")):
            for name, (build, macs) in gemm_cases(size, batch, args.steps).items():
                row = bench_case(build, macs, args.rounds, args.min_seconds)
                row["onednn_vs_mkl"] = row["onednn_gflops"] / row["mkl_gflops"]
                row["auto"] = auto["wide" if name in WIDE_KINDS else "per_step"]
                row["faster"] = "onednn" if row["onednn_vs_mkl"] > 1 else "mkl"
                result["gemms"][f"{size}/B{batch}/{name}"] = row
                print(f"{size}/B{batch:<4d} {name:20s} mkl {row['mkl_gflops']:6.1f}  "
                      f"onednn {row['onednn_gflops']:6.1f} GFLOP/s  x{row['onednn_vs_mkl']:.2f}  auto: {row['auto']}"
                      + ("" if row["onednn_ran"] else "  (below oneDNN's thresholds: MKL both)"), flush=True)
    rows = [row for row in result["gemms"].values() if row["onednn_ran"]]
    result["auto_took_the_faster"] = f"{sum(row['auto'] == row['faster'] for row in rows)} of {len(rows)}"
    print(f"auto took the faster library in {result['auto_took_the_faster']} GEMMs oneDNN runs", flush=True)
    if args.json:
        run_record.write(args.json, result)
    return result


if __name__ == "__main__":
    main()
