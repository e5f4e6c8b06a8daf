#!/usr/bin/env python
"""Train / evaluate the static-hypernetwork image models (Ha, Dai & Le 2017, §4.1-4.2, Tables 2, 7).

    python examples/hyper_resnet/train.py --dataset cifar10 --data ~/data/cifar10 --arch hyper_wrn_40_2
    python examples/hyper_resnet/train.py --dataset fashion_mnist --data data/fashion-mnist --arch hyper_convnet
    python examples/hyper_resnet/train.py --count-params --arch hyper_wrn_40_1
    python examples/hyper_resnet/train.py --eval --resume runs/x/checkpoint.pt --dataset cifar10 --data ...
    torchrun --nproc_per_node 2 examples/hyper_resnet/train.py ...   (gloo on CPU, nccl on CUDA)

Paper settings (paper-spec §3.1, §3.2, §6): CIFAR-10 45k/5k/10k split, pad-4 random crop + flip,
batch 128; normal WRNs use Nesterov SGD (momentum 0.9) with Table 8, hyper WRNs Adam with Table 9
(C5); L2 5e-4 on the kernels, for hyper models on the *generated* kernels (C3, ``--weight-decay``).
MNIST-format data: 55k/5k/10k, pad-1 random crop (28 -> 30 -> 28), Adam 1e-3, batch 1000 (C6),
50 epochs by default (the reference notebook's length; the paper does not say).
"""
import argparse
import importlib.util
import json
import os
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
if importlib.util.find_spec("hyperfairseq") is None:  # not installed: use this checkout
    sys.path.insert(0, REPO)

import hyper_resnet_engine as E  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from hyperfairseq import checkpoint_files  # noqa: E402
from hyperfairseq.stop_signals import StopRequest  # noqa: E402
from hyperfairseq.vision import ARCHITECTURES, UnknownArchitectureError, build_model, export_plain  # noqa: E402
from hyperfairseq.vision.datasets import DatasetError, ImageSet, load_split, split_train_val  # noqa: E402

CHECKPOINT_FORMAT = "hyperfairseq-vision-v1"
DATASET_DEFAULTS = {
    # batch, validation fraction (5k of 50k / 60k), augmentation, channels, image size
    "cifar10": dict(batch_size=128, val_fraction=5000 / 50000, augment=E.Augment(4, True), channels=3, size=32),
    "mnist": dict(batch_size=1000, val_fraction=5000 / 60000, augment=E.Augment(1, False), channels=1, size=28),
    "fashion_mnist": dict(batch_size=1000, val_fraction=5000 / 60000, augment=E.Augment(1, False), channels=1, size=28),
}
#: settings that define a run's trajectory: stored in the checkpoint and restored on --resume
TRAJECTORY = ("dataset", "arch", "seed", "batch_size", "lr_schedule", "optimizer", "momentum",
              "weight_decay", "val_fraction", "train_size", "hyper_init", "bf16", "double")
#: values of trajectory settings added after the first checkpoints were written
LEGACY_SETTINGS = {"double": False}
PAPER_PARAMS = {"wrn_40_1": "0.563 M", "hyper_wrn_40_1": "0.097 M", "wrn_40_2": "2.236 M",
                "hyper_wrn_40_2": "0.148 M", "convnet": "12,544 (conv2)", "hyper_convnet": "4,244 (conv2)"}


class UsageError(Exception):
    """A flag, file or checkpoint the user supplied is not usable; the message says why."""


def at_least(low: int):
    """argparse type: an integer >= low (a one-line usage error otherwise)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse


def unit_interval(text: str) -> float:
    """argparse type: a number in [0, 1) (momentum, validation fraction)."""
    value = float(text)
    if not (0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0.0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Static hypernetworks for convnets (HyperNetworks, Tables 2 and 7)")
    p.add_argument("--arch", help=f"one of {', '.join(ARCHITECTURES)}")
    p.add_argument("--dataset", choices=sorted(DATASET_DEFAULTS))
    p.add_argument("--data",
                   help="cifar10: folder holding cifar-10-batches-py/; mnist, fashion_mnist: folder of IDX files")
    p.add_argument("--download", action="store_true", help="fetch CIFAR-10 with torchvision first (needs network)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--count-params", action="store_true", help="print parameter counts beside the paper's and exit")
    mode.add_argument("--eval", action="store_true",
                      help="evaluate --resume CHECKPOINT on the validation and test splits")
    p.add_argument("--resume", help="checkpoint to continue training from (or to evaluate with --eval)")
    p.add_argument("--save-dir", help="checkpoint folder (default runs/<arch>-<dataset>)")
    p.add_argument("--save-interval", type=at_least(0), default=1000,
                   help="checkpoint every N steps (0: only at the end)")
    p.add_argument("--max-steps", type=at_least(0),
                   help="stop after this many updates (default: end of the lr schedule)")
    p.add_argument("--batch-size", type=at_least(1), help="global batch (default 128 CIFAR, 1000 MNIST)")
    p.add_argument("--lr-schedule", help="STEP:LR,... lr while step < STEP (default Table 8 / Table 9 / 1e-3)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), help="default: sgd (Nesterov) for wrn_*, adam otherwise")
    p.add_argument("--momentum", type=unit_interval, help="Nesterov momentum (default 0.9, C5)")
    p.add_argument("--weight-decay", type=non_negative_float,
                   help="L2 coefficient on (generated) kernels "
                   "(default 5e-4, C3; 5e-6 fits hyper WRNs better with Adam, see README)")
    p.add_argument("--val-fraction", type=unit_interval, help="held-out validation fraction of the training file")
    p.add_argument("--train-size", type=at_least(1), help="use only the first N training images (smoke runs)")
    p.add_argument("--test-size", type=at_least(1), help="evaluate on only the first N test images")
    p.add_argument("--hyper-init", choices=("he", "notebook"), help="generator initialisation (default he, C1)")
    p.add_argument("--seed", type=int, help="seed for init, data order and augmentation (default 1)")
    p.add_argument("--eval-interval", type=at_least(0), default=0, help="validate every N steps (0: only at the end)")
    p.add_argument("--eval-batch-size", type=at_least(1), default=1000)
    p.add_argument("--bf16", action="store_true", default=None, help="bfloat16 autocast (CPU or CUDA)")
    p.add_argument("--double", action="store_true", default=None,
                   help="float64 weights and arithmetic (slow; makes runs comparable across CPUs and world sizes)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--threads", type=at_least(1), help="torch.set_num_threads")
    p.add_argument("--log-interval", type=at_least(1), default=50)
    p.add_argument("--no-progress", action="store_true", help="no progress bar or log lines")
    p.add_argument("--results-json", help="write a run record (command, commit, hardware, results) here")
    p.add_argument("--figure", help="save the model's kernels (paper Figs. 2, 12, 13 style) as this PNG")
    p.add_argument("--export", help="save a plain network with materialised kernels (hyper models) here")
    return p


# ----------------------------------------------------------------------------- settings


def resolve(args: argparse.Namespace, stored: Optional[Dict]) -> argparse.Namespace:
    """Fill defaults; on resume take the trajectory settings from the checkpoint (exact resume)."""
    if stored is not None:
        stored = {**LEGACY_SETTINGS, **stored}
        for key in TRAJECTORY:
            given = getattr(args, key)
            if given is not None and given != stored[key]:
                raise UsageError(f"--{key.replace('_', '-')} {given} differs from the checkpoint's {stored[key]}; "
                                 "a resumed run keeps its stored settings")
            setattr(args, key, stored[key])
        return args
    if args.arch is None:
        raise UsageError("--arch is required; expected one of " + ", ".join(ARCHITECTURES))
    if args.arch not in ARCHITECTURES:
        raise UsageError(f"unknown --arch {args.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    if args.dataset is None:
        raise UsageError("--dataset is required for training (cifar10, mnist or fashion_mnist)")
    defaults = DATASET_DEFAULTS[args.dataset]
    args.seed = 1 if args.seed is None else args.seed
    args.batch_size = args.batch_size or defaults["batch_size"]
    args.val_fraction = defaults["val_fraction"] if args.val_fraction is None else args.val_fraction
    args.optimizer = args.optimizer or ("sgd" if args.arch.startswith("wrn_") else "adam")
    args.momentum = 0.9 if args.momentum is None else args.momentum
    args.weight_decay = 5e-4 if args.weight_decay is None else args.weight_decay
    args.hyper_init = args.hyper_init or "he"
    args.bf16 = bool(args.bf16)
    args.double = bool(args.double)
    if args.bf16 and args.double:
        raise UsageError("--bf16 and --double exclude each other")
    return args


def default_schedule(args: argparse.Namespace, steps_per_epoch: int) -> str:
    if args.arch.startswith("hyper_wrn"):
        return E.Schedule(E.TABLE9).format()
    if args.arch.startswith("wrn"):
        return E.Schedule(E.TABLE8).format()
    return E.Schedule(((50 * steps_per_epoch, 1e-3),)).format()  # Adam 1e-3 (C6), 50 epochs (§7.3)


# ----------------------------------------------------------------------------- data and model


def load_data(args: argparse.Namespace) -> Dict[str, ImageSet]:
    if not args.data:
        raise UsageError("--data is required: the folder holding the dataset files")
    if args.download:
        if args.dataset != "cifar10":
            raise UsageError("--download only fetches cifar10; get Fashion-MNIST with scripts/get_vision_data.sh")
        import torchvision

        torchvision.datasets.CIFAR10(args.data, train=True, download=True)
        torchvision.datasets.CIFAR10(args.data, train=False, download=True)
    full = load_split(args.dataset, args.data, "train")
    check_image_shape(full, args)
    train, val = split_train_val(full, args.val_fraction, seed=0)  # the split is fixed across seeds
    if args.train_size:
        train = ImageSet(train.images[:args.train_size], train.labels[:args.train_size])
    test = load_split(args.dataset, args.data, "test")
    check_image_shape(test, args)
    if args.test_size:
        test = ImageSet(test.images[:args.test_size], test.labels[:args.test_size])
    return {"train": train, "val": val, "test": test}


def check_image_shape(images: ImageSet, args: argparse.Namespace) -> None:
    d = DATASET_DEFAULTS[args.dataset]
    expected = (d["channels"], d["size"], d["size"])
    if tuple(images.images.shape[1:]) != expected:
        raise UsageError(f"--data {args.data}: images of shape {tuple(images.images.shape[1:])} (C, H, W), but "
                         f"--dataset {args.dataset} needs {expected}")


def make_model(arch: str, dataset: str, hyper_init: str, double: bool = False):
    """The model initialised in float32 (the same draws for every dtype), in float64 with ``double``."""
    d = DATASET_DEFAULTS[dataset]
    kwargs = dict(in_channels=d["channels"], image_size=d["size"])
    if arch.startswith("hyper_"):
        kwargs["hyper_init"] = hyper_init
    model = build_model(arch, **kwargs)
    return model.double() if double else model


def make_optimizer(args, model) -> torch.optim.Optimizer:
    params = list(model.parameters())
    if args.optimizer == "sgd":  # Table 8; L2 enters through the loss (C3), not weight_decay=
        return torch.optim.SGD(params, lr=0.0, momentum=args.momentum, nesterov=args.momentum > 0)
    return torch.optim.Adam(params, lr=0.0)


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str, model, optimizer, step: int, args, stats, best: Dict) -> None:
    state = {
        "format": CHECKPOINT_FORMAT, "arch": args.arch, "dataset": args.dataset, "step": step,
        "settings": {k: getattr(args, k) for k in TRAJECTORY}, "mean": stats[0], "std": stats[1],
        "model": model.state_dict(), "optimizer": optimizer.state_dict() if optimizer else None,
        "best": best,
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint


def load_checkpoint(path: str) -> Dict:
    try:  # read as the plugin reads every checkpoint: weights only, a message naming the file and its fault
        checkpoint_files.check_file(path)
        ckpt = checkpoint_files.safe_load(path, path)
    except checkpoint_files.CheckpointError as err:
        raise UsageError(f"--resume {err}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"--resume {path}: not a {CHECKPOINT_FORMAT} checkpoint written by this script")
    return ckpt


def restore_model(model, ckpt: Dict, path: str) -> None:
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise UsageError(f"--resume {path}: weights do not fit architecture {ckpt['arch']!r} ({first})") from None


def check_arch(args, ckpt: Dict, path: str) -> None:
    if args.arch is not None and args.arch != ckpt["arch"]:
        raise UsageError(f"--resume {path} holds a {ckpt['arch']!r} model but --arch is {args.arch!r}; "
                         f"drop --arch or pass --arch {ckpt['arch']}")


# ----------------------------------------------------------------------------- training


def setup_distributed(device_name: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = E.optional_device(device_name)
    if world > 1:
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return dist.get_rank(), world, device
    return 0, 1, device


def train(args: argparse.Namespace) -> int:
    rank, world, device = setup_distributed(args.device)
    try:
        return train_on_rank(args, rank, world, device)
    finally:
        if world > 1:
            dist.destroy_process_group()


class Start(NamedTuple):
    """Where a run starts: fresh, or from `--resume`'s checkpoint (its settings, channel statistics, weights,
    optimizer state, step and best validation so far)."""
    args: argparse.Namespace
    data: Dict[str, ImageSet]
    stats: Tuple[List[float], List[float]]  # per-channel mean and std of the training images
    stream: E.BatchStream
    schedule: E.Schedule
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    step: int
    best: Dict


def start(args, rank: int, world: int, device: torch.device) -> Start:
    ckpt = load_checkpoint(args.resume) if args.resume else None
    if ckpt is not None:
        check_arch(args, ckpt, args.resume)
    args = resolve(args, ckpt["settings"] if ckpt else None)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    data = load_data(args)
    stats = (ckpt["mean"], ckpt["std"]) if ckpt else E.channel_stats(data["train"].images)
    try:
        stream = E.BatchStream(data["train"], args.batch_size, args.seed, DATASET_DEFAULTS[args.dataset]["augment"],
                               stats[0], stats[1], rank, world, torch.float64 if args.double else torch.float32)
        args.lr_schedule = args.lr_schedule or default_schedule(args, stream.steps_per_epoch)
        schedule = E.Schedule.parse(args.lr_schedule)
    except ValueError as err:
        raise UsageError(str(err)) from None
    torch.manual_seed(args.seed)  # identical initial weights on every rank
    model = make_model(args.arch, args.dataset, args.hyper_init, args.double).to(device)
    optimizer = make_optimizer(args, model)
    if ckpt is None:
        return Start(args, data, stats, stream, schedule, model, optimizer, 0, {})
    restore_model(model, ckpt, args.resume)
    if ckpt["optimizer"] is None:
        raise UsageError(f"--resume {args.resume} is an exported network without optimizer state; use it with --eval")
    optimizer.load_state_dict(ckpt["optimizer"])
    return Start(args, data, stats, stream, schedule, model, optimizer, ckpt["step"], ckpt["best"])


def train_step(run: Start, loss_fn, step: int, device: torch.device) -> Tuple[float, float]:
    """Update `step` + 1 (its learning rate from the schedule, its batch, forward, backward); (loss, lr)."""
    lr = run.schedule.lr(step)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    x, y = run.stream.batch(step)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=run.args.bf16):
        out = loss_fn(x.to(device), y.to(device))
    run.optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    run.optimizer.step()
    return E.finite_or_raise(out.loss.item(), step + 1), lr


def train_on_rank(args, rank: int, world: int, device: torch.device) -> int:
    run = start(args, rank, world, device)
    args, data, stats, model, optimizer, step, best = (run.args, run.data, run.stats, run.model, run.optimizer,
                                                        run.step, run.best)
    max_steps = args.max_steps if args.max_steps is not None else run.schedule.last_step
    save_dir = args.save_dir or os.path.join("runs", f"{args.arch}-{args.dataset}")
    ckpt_path = os.path.join(save_dir, "checkpoint.pt")
    loss_fn = E.TrainingLoss(model, args.weight_decay)
    if world > 1:
        loss_fn = torch.nn.parallel.DistributedDataParallel(
            loss_fn, device_ids=[device.index] if device.type == "cuda" else None)
    t0 = time.time()
    progress = E.Progress(max_steps, step, rank == 0 and not args.no_progress, args.log_interval)
    stop = StopRequest(unit="step")

    def save(at_step):
        if rank == 0:
            with stop.writing(ckpt_path):
                save_checkpoint(ckpt_path, model, optimizer, at_step, args, stats, best)

    with stop:
        model.train()
        while step < max_steps and not stop.signum:
            loss, lr = train_step(run, loss_fn, step, device)
            step += 1
            progress.update(step, loss, lr)
            if args.eval_interval and step % args.eval_interval == 0:
                best = validate(model, data, stats, args, device, step, best, rank)
            if args.save_interval and step % args.save_interval == 0:
                save(step)
        progress.close()
        if stop.signum:
            save(step)
            if rank == 0:
                print(f"stopped by signal {stop.signum} at step {step}; checkpoint saved to {ckpt_path}; "
                      f"continue with --resume {ckpt_path}", flush=True)
            return 128 + stop.signum
    if not args.eval_interval or step % args.eval_interval:
        best = validate(model, data, stats, args, device, step, best, rank)
    save(step)
    results = final_results(model, data, stats, args, device, step, best)
    if rank == 0:
        finish(results, model, args, time.time() - t0, ckpt_path)
    return 0


def validate(model, data, stats, args, device, step: int, best: Dict, rank: int) -> Dict:
    val = E.evaluate(model, data["val"], stats[0], stats[1], args.eval_batch_size, device, args.bf16)
    if rank == 0 and not args.no_progress:
        scores = f"valid accuracy {val['accuracy']:.4f} | valid loss {val['loss']:.4f} | {val['images']} images"
        print(f"step {step} | {scores if val['images'] else 'no validation images (--val-fraction leaves none)'}",
              flush=True)
    if val["images"] and val["accuracy"] > best.get("val_accuracy", -1.0):
        test = E.evaluate(model, data["test"], stats[0], stats[1], args.eval_batch_size, device, args.bf16)
        best = {"step": step, "val_accuracy": val["accuracy"], "test_accuracy": test["accuracy"]}
    return best


def final_results(model, data, stats, args, device, step: int, best: Dict) -> Dict:
    split = {name: E.evaluate(model, data[name], stats[0], stats[1], args.eval_batch_size, device, args.bf16)
             for name in ("val", "test")}
    return {"arch": args.arch, "dataset": args.dataset, "steps": step,
            "params": sum(p.numel() for p in model.parameters()),
            "val": split["val"], "test": split["test"], "best_val": best,
            "settings": {k: getattr(args, k) for k in TRAJECTORY}, "train_images": len(data["train"].labels)}


def finish(results: Dict, model, args, wall: float, ckpt_path: str) -> None:
    print(f"{results['arch']} on {results['dataset']}: test accuracy {results['test']['accuracy']:.4f} "
          f"(error {100 * results['test']['error']:.2f}%) on {results['test']['images']} images after "
          f"{results['steps']} steps; checkpoint {ckpt_path}", flush=True)
    if args.results_json:
        write_json(args.results_json, E.run_record(results, wall))
    if args.figure:
        from kernel_figures import save_model_kernels

        save_model_kernels(model, args.figure, title=f"{results['arch']} ({results['dataset']})")
    if args.export:
        export(model, ckpt_path, args.export)


def export(model, ckpt_path: str, out: str) -> None:
    """Write ``ckpt_path`` again as the plain network with materialised kernels (usable with --eval)."""
    ckpt = load_checkpoint(ckpt_path)
    plain = export_plain(model) if model.use_hyper else model
    ckpt.update(arch=plain.arch, model=plain.state_dict(), optimizer=None, exported_from=model.arch)
    ckpt["settings"] = dict(ckpt["settings"], arch=plain.arch)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.save(ckpt, out + ".tmp")
    os.replace(out + ".tmp", out)
    print(f"exported {plain.arch} with materialised kernels to {out}")


def write_json(path: str, record: Dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=False)
        fh.write("\n")
    os.replace(path + ".tmp", path)


def check_outputs(args: argparse.Namespace) -> None:
    """Output paths are checked before any work is done, so that nothing is lost at the end."""
    for flag in ("results_json", "figure", "export"):
        path = getattr(args, flag)
        if path and os.path.isdir(path):
            raise UsageError(f"--{flag.replace('_', '-')} {path} is a folder; expected a file path")


# ----------------------------------------------------------------------------- eval and counts


def evaluate_checkpoint(args: argparse.Namespace) -> int:
    if not args.resume:
        raise UsageError("--eval needs --resume CHECKPOINT")
    ckpt = load_checkpoint(args.resume)
    check_arch(args, ckpt, args.resume)
    settings = ckpt["settings"]
    args.arch = ckpt["arch"]
    if (args.dataset is not None
            and DATASET_DEFAULTS[args.dataset]["channels"] != DATASET_DEFAULTS[ckpt["dataset"]]["channels"]):
        raise UsageError(f"--dataset {args.dataset} has other image channels than the checkpoint's {ckpt['dataset']}")
    args.dataset = args.dataset or ckpt["dataset"]
    settings = {**LEGACY_SETTINGS, **settings}
    for key in ("seed", "val_fraction", "train_size", "hyper_init", "bf16", "double"):
        setattr(args, key, settings[key] if getattr(args, key) is None else getattr(args, key))
    device = E.optional_device(args.device)
    model = make_model(args.arch, ckpt["dataset"], settings["hyper_init"], settings["double"]).to(device)
    restore_model(model, ckpt, args.resume)
    data = load_data(args)
    t0 = time.time()
    stats = (ckpt["mean"], ckpt["std"])
    results = {"arch": args.arch, "dataset": args.dataset, "checkpoint": args.resume, "steps": ckpt["step"],
               "val": E.evaluate(model, data["val"], *stats, args.eval_batch_size, device, args.bf16),
               "test": E.evaluate(model, data["test"], *stats, args.eval_batch_size, device, args.bf16)}
    finish(results, model, args, time.time() - t0, args.resume)
    return 0


def count_params(args: argparse.Namespace) -> int:
    names = [args.arch] if args.arch else list(ARCHITECTURES)
    if args.arch and args.arch not in ARCHITECTURES:
        raise UsageError(f"unknown --arch {args.arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    cols = ("embeddings", "generator", "kernels", "stem", "bn", "shortcuts", "conv_biases", "classifier")
    print(f"{'arch':<16}" + "".join(f"{c:>12}" for c in cols) + f"{'total':>11}  paper")
    for name in names:
        dataset = args.dataset or ("cifar10" if "wrn" in name else "mnist")
        model = make_model(name, dataset, "he")
        counts = model.parameter_breakdown()
        total = sum(counts.values())
        print(f"{name:<16}" + "".join(f"{counts.get(c, 0):>12,}" for c in cols) + f"{total:>11,}  {PAPER_PARAMS[name]}")
    print(COUNT_NOTE)
    return 0


COUNT_NOTE = """
Notes (paper-spec §1.4, C2): generator = d(N_z+1)N_in + f N_out f (d+1) = 75,920 for the WRNs
(N_z = d = 64, 16x16x3x3 basic kernels) and 4,240 (+4 embedding = 4,244) for the convnet, exactly the
paper's formula. Embeddings: 242 blocks x 64 (WRN 40-1), 966 x 64 (WRN 40-2). The rest are ordinary
parameters whose bookkeeping the paper does not state: we use 1x1 projection shortcuts where the
shape changes, BN with scale and shift, conv1 without bias and a biased classifier. Our WRN totals
are within 0.2% (40-1) and 0.3% (40-2) of the paper's 0.563 M / 2.236 M; the same ~7.6k surplus in
both 40-2 rows (ours 2,243,546 vs 2.236 M, 155,626 vs 0.148 M) shows the gap lies in those ordinary
layers (e.g. a different shortcut or BN variant), not in the hypernetwork, which matches the paper's
formula exactly. The convnet rows count only the second 7x7x16x16 layer, as Table 7 does."""


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        check_outputs(args)
        if args.count_params:
            return count_params(args)
        if args.eval:
            return evaluate_checkpoint(args)
        return train(args)
    except (UsageError, DatasetError, UnknownArchitectureError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
