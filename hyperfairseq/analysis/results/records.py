"""One run record (a docs/runs/*.json file) and the fields every section of the results page reads from it.

Records are written by many scripts over many rounds, so each field is looked up under every name it has
had (`first`), and a reader never fails: a missing field reads "?" or None. `cell` and `code` make a value
safe inside a markdown table.
"""

import re
from typing import NamedTuple, Optional


class Record(NamedTuple):
    name: str
    data: dict
    table: Optional[str]
    arch: Optional[str]
    smoke: bool
    note: str


def dig(data, path: str):
    """data["a"]["b"]... for "a.b", or None when any step is missing or not a dict."""
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def first(data, *paths):
    for path in paths:
        value = dig(data, path)
        if value is not None:
            return value
    return None


def fmt(value, spec: str = "{:.3f}") -> Optional[str]:
    try:
        return spec.format(float(value))
    except (TypeError, ValueError):
        return None


def millions(value) -> Optional[str]:
    try:
        return f"{float(value) / 1e6:.3f} M"
    except (TypeError, ValueError):
        return None


DATASETS = {"fashion_mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "mnist": "MNIST", "kanjivg": "KanjiVG strokes"}


def data_label(rec: Record) -> str:
    data = rec.data
    label = first(data, "dataset_label")
    if label is None:
        dataset = first(data, "results.dataset", "result.dataset", "dataset")
        label = DATASETS.get(str(dataset), dataset) if dataset else None
    if label is None and isinstance(data.get("data"), str):
        label = data["data"]
    if label is None and isinstance(data.get("what"), str):
        label = data["what"].split(";")[0]
    return str(label or "?")


def commit_of(data: dict) -> str:
    commit = first(data, "commit", "git_commit")
    if commit is None:
        return "?"
    commit = str(commit)
    dirty = data.get("git_dirty") is True or commit.endswith("+dirty")
    return commit.replace("+dirty", "")[:10] + ("+dirty" if dirty else "")


def hardware_of(data: dict) -> str:
    hw = data.get("hardware")
    if isinstance(hw, dict):
        gpu = hw.get("cuda") or hw.get("gpu")
        cores = hw.get("cores") or hw.get("cpus")
        parts = [str(gpu)] if gpu else []
        cpu = hw.get("cpu") or hw.get("machine")
        parts.append(f"{cpu or 'CPU'}, {cores} cores" if cores else str(cpu or "?"))
        return "; ".join(parts)
    device = data.get("device")
    return str(hw or (device.split(";")[0] if isinstance(device, str) else device) or "?")


def command_of(data: dict) -> str:
    command = first(data, "command", "commands", "train_flags")
    if isinstance(command, list):
        command = " && ".join(str(c) for c in command)
    return str(command) if command else "?"


def wall_of(data: dict) -> str:
    wall = first(data, "wall_seconds", "wall_time_s", "train_seconds_wall")
    device = data.get("device")
    return fmt(wall, "{:.0f} s") or (device.split(";")[-1].strip() if isinstance(device, str) else "?")


def updates_of(data: dict) -> str:
    value = first(data, "num_updates", "max_update", "results.steps", "result.train.train_num_updates",
                  "result.train.num_updates", "result.updates")  # train: fairseq's epoch or its inner log line
    return "?" if value is None else str(value)


def short_hardware(data: dict) -> str:
    """'H200' or 'CPU, 2 cores' (the full hardware is on the results page and in the record)."""
    hw, device = data.get("hardware"), data.get("device")
    text = " ".join(str(x) for x in (hw if isinstance(hw, dict) else {"hw": hw}).values()) + " " + str(device or "")
    gpu = re.search(r"NVIDIA ([\w-]+)", text)
    if gpu:
        return gpu.group(1)
    cores = re.search(r"(\d+) cores", text)
    if isinstance(hw, dict) and (hw.get("cores") or hw.get("cpus")):
        cores = (None, hw.get("cores") or hw.get("cpus"))
    return f"CPU, {cores[1] if isinstance(cores, tuple) else cores.group(1)} cores" if cores else "CPU"


def is_gpu_record(data: dict) -> bool:
    return (data.get("device") == "cuda" or "--device cuda" in command_of(data)
            or bool(re.search(r"NVIDIA|\bGPU\b|cuda", str(data.get("hardware")))))


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(text: str, limit: int = 0) -> str:
    text = cell(text).replace("`", "'")
    if limit and len(text) > limit:
        text = text[:limit] + " …"
    return "`" + text + "`"


def record_heading(rec: Record) -> str:
    """A benchmark record's name, linked to its file, and the hardware it ran on."""
    return f"**[{rec.name}](runs/{rec.name}.json)**: {cell(hardware_of(rec.data))}"
