"""Compile, in parallel, every Triton kernel variant the GPU check's later stages will launch.

Triton compiles a kernel variant (row width, dtype, layer norm, mask, z/d mode) at its first launch, in
the launching process, 2-15 s each (gpu-design §4). The layer, fairseq-train and char-PTB stages of
`gpu_check.sh` need a few dozen variants; compiled one after another inside timed stages they would eat
the minutes. This script runs one forward+backward of every layer configuration of those stages (T = 2,
B = 16: the same integer specialisation as B = 128), then one step of every tile run of the micro stage
(`bench_triton_cell.tile_runs`, at its sizes), in `--jobs` worker processes that share Triton's on-disk
cache, so the timed stages find the variants compiled. gpu_check.sh waits for it before the first timed
stage (a compile on the spare cores would slow the timed processes).

    python benchmarks/triton_warm.py --jobs 8
    python benchmarks/triton_warm.py --jobs 2 --dry-run    # CPU, TRITON_INTERPRET=1, tiny rows: the code path
"""

import argparse
import itertools
import os
import subprocess
import sys
import time

SIZES = {"ptb": (64, 1000, 128, 4), "enwik8": (64, 1800, 256, 64)}
DRY_SIZES = {"ptb": (5, 12, 6, 3), "enwik8": (5, 16, 8, 4)}  # --dry-run: the same configurations, tiny rows
DRY = "--dry-run" in sys.argv
if DRY:
    os.environ["TRITON_INTERPRET"] = "1"  # before any kernel module is imported
LAYERS = {"hyper": (True, False), "ln-hyper": (True, True), "lstm": (False, False), "ln-lstm": (False, True)}


def layer_configurations():
    """(size, use_hyper, layer_norm, recurrent dropout, dtype) of every layer the later stages run: the
    layer benchmark (4 layer types, no dropout, fp32 / bf16) and fairseq-train (ln_hyperlstm_lm_ptb with
    recurrent dropout 0.1; fp32, --amp = fp16 autocast, --bf16)."""
    for size, layer, dtype in itertools.product(SIZES, LAYERS, ("float32", "bfloat16")):
        yield (size, *LAYERS[layer], 0.0, dtype)
    for dtype in ("float32", "float16", "bfloat16"):
        yield ("ptb", *LAYERS["ln-hyper"], 0.1, dtype)


def configurations() -> list:
    """What to compile, in order: ("layer", a layer configuration), then ("micro", i) for the i-th run of
    the microbenchmark (bench_triton_cell.tile_runs: its table tiles first, then the alternatives)."""
    import bench_triton_cell

    return ([("layer", config) for config in layer_configurations()]
            + [("micro", i) for i in range(len(bench_triton_cell.tile_runs()))])


def warm(kind: str, config) -> None:
    """One configuration's forward and backward on the GPU (and a one-step call for a layer), which compiles
    its kernel variants into Triton's on-disk cache; with --dry-run on CPU at tiny sizes."""
    import torch

    device = "cpu" if DRY else "cuda"
    if kind == "micro":
        import bench_triton_cell

        case, dtype_name, tiles = bench_triton_cell.tile_runs()[config]
        bench_triton_cell.compiled_step(case, dtype_name, tiles, 2 if DRY else 128, 12 if DRY else case.n, device)
    else:
        warm_layer(*config, device)
    if not DRY:
        torch.cuda.synchronize()


def warm_layer(size, hyper, ln, drop, dtype, device) -> None:
    """A one-layer HyperLSTM of `size` (or its LSTM baseline): one training call, then one one-step call."""
    import torch

    from hyperfairseq.modules import HyperLSTM

    n_x, n_h, n_hat, n_z = (DRY_SIZES if DRY else SIZES)[size]
    rnn = HyperLSTM(n_x, n_h, 1, n_hat, n_z, use_hyper=hyper, layer_norm=ln, recurrent_dropout=drop)
    rnn = rnn.to(device, getattr(torch, dtype)).train()
    x = torch.randn(2, 16, n_x, device=device, dtype=rnn.layers[0].weight_hh.dtype, requires_grad=True)
    rnn(x)[0].float().sum().backward()
    with torch.no_grad():  # one-step decoding (sampling, generation)
        rnn.eval()(x[:1])


def worker(index: int, jobs: int) -> int:
    """Warm every `jobs`-th configuration from `index`; a failure is printed and the next one goes on."""
    failed = 0
    for i, (kind, config) in enumerate(configurations()):
        if i % jobs == index:
            start = time.time()
            try:
                warm(kind, config)
                print(f"warm {kind} {config}: {time.time() - start:.1f} s", flush=True)
            except Exception as err:  # report and go on: the timed stage will show the same error in context
                failed += 1
                print(f"warm {kind} {config}: FAILED {type(err).__name__}: {err}", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--dry-run", action="store_true", help="CPU, TRITON_INTERPRET=1, tiny rows (the code path)")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.jobs)
    dry = ["--dry-run"] if args.dry_run else []
    procs = [subprocess.Popen([sys.executable, __file__, "--jobs", str(args.jobs), "--worker", str(i), *dry])
             for i in range(args.jobs)]
    return max(proc.wait() for proc in procs)


if __name__ == "__main__":
    sys.exit(main())
