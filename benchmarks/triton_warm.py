"""Compile, in parallel, every Triton kernel variant the GPU check's later stages will launch.

Triton compiles a kernel variant (row width, dtype, layer norm, mask, z/d mode) at its first launch, in
the launching process, 2-15 s each (gpu-design §4). The layer, fairseq-train and char-PTB stages of
`gpu_check.sh` need a few dozen variants; compiled one after another inside timed stages they would eat
the minutes. This script runs one forward+backward of every layer configuration of those stages (T = 2,
B = 16: the same integer specialisation as B = 128) in `--jobs` worker processes that share Triton's
on-disk cache, so the timed stages find the variants compiled.

    python benchmarks/triton_warm.py --jobs 12
"""

import argparse
import itertools
import os
import subprocess
import sys
import time

SIZES = {"ptb": (64, 1000, 128, 4), "enwik8": (64, 1800, 256, 64)}
LAYERS = {"hyper": (True, False), "ln-hyper": (True, True), "lstm": (False, False), "ln-lstm": (False, True)}


def configurations():
    """(size, use_hyper, layer_norm, recurrent dropout, dtype) of every layer the later stages run: the
    layer benchmark (4 layer types, no dropout, fp32 / bf16) and fairseq-train (lstm_lm_ptb_1000 and
    ln_hyperlstm_lm_ptb with recurrent dropout 0.1; fp32, --amp = fp16 autocast, --bf16)."""
    for size, layer, dtype in itertools.product(SIZES, LAYERS, ("float32", "bfloat16")):
        yield (size, *LAYERS[layer], 0.0, dtype)
    for layer, dtype in itertools.product(("lstm", "ln-hyper"), ("float32", "float16", "bfloat16")):
        yield ("ptb", *LAYERS[layer], 0.1, dtype)


def warm(config) -> None:
    import torch

    from hyperfairseq.modules import HyperLSTM

    size, hyper, ln, drop, dtype = config
    n_x, n_h, n_hat, n_z = SIZES[size]
    rnn = HyperLSTM(n_x, n_h, 1, n_hat, n_z, use_hyper=hyper, layer_norm=ln, recurrent_dropout=drop)
    rnn = rnn.to("cuda", getattr(torch, dtype)).train()
    x = torch.randn(2, 16, n_x, device="cuda", dtype=rnn.layers[0].weight_hh.dtype, requires_grad=True)
    rnn(x)[0].float().sum().backward()
    with torch.no_grad():  # one-step decoding (sampling, generation)
        rnn.eval()(x[:1])
    torch.cuda.synchronize()


def worker(index: int, jobs: int) -> int:
    failed = 0
    for i, config in enumerate(configurations()):
        if i % jobs == index:
            start = time.time()
            try:
                warm(config)
                print(f"warm {config}: {time.time() - start:.1f} s", flush=True)
            except Exception as err:  # report and go on: the timed stage will show the same error in context
                failed += 1
                print(f"warm {config}: FAILED {type(err).__name__}: {err}", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        return worker(args.worker, args.jobs)
    procs = [subprocess.Popen([sys.executable, __file__, "--jobs", str(args.jobs), "--worker", str(i)])
             for i in range(args.jobs)]
    return max(proc.wait() for proc in procs)


if __name__ == "__main__":
    sys.exit(main())
