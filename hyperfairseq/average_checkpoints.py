"""Average the weights of several checkpoints of one run into one checkpoint (as fairseq's script does).

    python -m hyperfairseq.average_checkpoints --inputs ckpt/checkpoint_1_1000.pt ckpt/checkpoint_1_2000.pt \
        --output ckpt/averaged.pt

fairseq's `scripts/average_checkpoints.py` (not in its wheel) refuses the plugin's language and translation
models: they save an extra state that is not a tensor (the carried states, the dictionaries' md5), and under
torch >= 2.6 it cannot read any fairseq checkpoint without `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`. Here every file
is read safely (`weights_only`); floating-point tensors are averaged in float64 and stored in their dtype, other
tensors must be equal; the output is the last input with the averaged weights, no carried state (a state of
one checkpoint belongs to no average; evaluation starts its streams afresh anyway) and its dictionary's md5.
Inputs that differ in their tensors' names or shapes are refused, naming the first difference.
"""

import os
from typing import Dict, List

import torch

from hyperfairseq import cli
from hyperfairseq.checkpoint_files import read_checkpoint
from hyperfairseq.errors import InputError

EXTRA = "_extra_state"


def average(models: List[Dict[str, object]], names: List[str]) -> Dict[str, object]:
    """The element-wise mean of the models' floating-point tensors; their other entries from the last."""
    first, out = models[0], dict(models[-1])
    for model, name in zip(models[1:], names[1:]):
        if set(model) != set(first):
            extra = sorted(set(model) ^ set(first))[:3]
            raise InputError(f"{name} and {names[0]} hold different tensors (e.g. {', '.join(extra)}): not one run")
    for key, value in first.items():
        if key.endswith(EXTRA):
            out[key] = _without_carried(models[-1][key])
        elif torch.is_tensor(value):
            out[key] = _mean([m[key] for m in models], key, names)
    return out


def _mean(values: List[torch.Tensor], key: str, names: List[str]) -> torch.Tensor:
    for value, name in zip(values[1:], names[1:]):
        if value.shape != values[0].shape:
            raise InputError(f"{key}: shape {tuple(value.shape)} in {name}, {tuple(values[0].shape)} in {names[0]}")
    if not values[0].is_floating_point():
        if not all(torch.equal(v, values[0]) for v in values[1:]):
            raise InputError(f"{key}: a non-float tensor that differs between the inputs cannot be averaged")
        return values[-1]
    total = sum(v.double() for v in values)
    return (total / len(values)).to(values[0].dtype)


def _without_carried(extra):
    """The LM decoder's extra state with no carried states (the dictionary's md5 stays)."""
    if isinstance(extra, dict) and "carried" in extra:
        return {**extra, "carried": {}}
    return extra


def run(inputs: List[str], output: str) -> None:
    if len(inputs) < 2:
        raise InputError(f"--inputs: give at least two checkpoints to average; got {len(inputs)}")
    if os.path.abspath(output) in {os.path.abspath(p) for p in inputs}:
        raise InputError(f"--output {output} is one of the inputs; write the average to another file")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):  # torch.save would fail only after every input was read, with a bare error
        raise InputError(f"--output {output}: the folder {folder} does not exist")
    states = [read_checkpoint(path) for path in inputs]
    state = dict(states[-1], model=average([s["model"] for s in states], inputs))
    tmp = output + ".tmp"
    try:
        torch.save(state, tmp)
        os.replace(tmp, output)  # the output is whole or absent
    finally:
        if os.path.exists(tmp):  # a failed write (disk full) leaves no partial file behind
            os.remove(tmp)
    print(f"averaged {len(inputs)} checkpoints into {output}")


def main(argv=None) -> int:
    parser = cli.parser("average_checkpoints", __doc__)
    parser.add_argument("--inputs", nargs="+", required=True, help="checkpoint files of one run")
    parser.add_argument("--output", required=True, help="the averaged checkpoint to write")
    args = parser.parse_args(argv)
    return cli.run_main(parser.prog, lambda: run(args.inputs, args.output))


if __name__ == "__main__":
    raise SystemExit(main())
