"""What the plugin changes in fairseq when it is loaded (`--user-dir hyperfairseq`), issue 12.

Each change is narrow (one function or name of one fairseq module) and exists because fairseq 0.12
loses work, runs code or prints a traceback where it should not:

1. **Safe checkpoint reading.** `fairseq.checkpoint_utils` calls a bare `torch.load`; its `torch` is
   replaced by a view whose `load` is `checkpoint_files.safe_load` (explicit `weights_only=True`) that
   also refuses files that are not fairseq checkpoints, naming the file. `load_model_ensemble_and_task`
   names a missing checkpoint instead of raising a bare IOError.
2. **Atomic copies.** fairseq writes one checkpoint atomically and then *copies* it to
   `checkpoint_last.pt` / `checkpoint_best.pt` in place, so a kill mid-copy leaves them truncated.
   Copies now go to `NAME.tmp` and are renamed over NAME: each is always the old or the new file.
3. **Resume never fails while an intact checkpoint exists.** With the default `--restore-file`, training
   resumes from an intact (`checkpoint_files.is_intact`) `checkpoint_last.pt`, or from a newer epoch / update
   checkpoint holding more updates (a kill between writing it and replacing checkpoint_last.pt); with
   checkpoint_last.pt damaged, from the newest intact checkpoint (then `checkpoint_best.pt`). A
   `--restore-file` given explicitly must exist (fairseq would silently start from scratch).
4. **A finished run is a no-op.** Re-running the command of a run that reached `--max-update` (or
   `--stop-time-hours`) trained one more update and overwrote its checkpoints; now it says so and exits 0.
5. **SIGINT / SIGTERM during fairseq-train** finish the current update, save `checkpoint_last.pt` and
   exit with 128 + the signal number (as examples/hyper_resnet/train.py does); a second signal exits at
   once, or, during a checkpoint write, once that file is complete (`stop_signals`). Before training starts
   a signal exits at once: nothing is lost then.
6. **float64 gradient norms** (`--task char_lm --double`): fairseq computes norms with dtype float32,
   which torch refuses for float64 gradients.
7. Uncaught `InputError`s print as one line (`errors.install_excepthook`).
8. **Named translation data** (fairseq-train / fairseq-generate of the `translation` task, which the
   hyperlstm_mt models use): a missing data folder, a damaged `dict.LANG.txt`, a missing split and a
   damaged `.idx` / `.bin` pair are InputErrors naming the file (the checks of data/binarised.py), where
   fairseq raised a FileNotFoundError, an assert or read past a file's end.
9. **Every item is batched.** `data_utils.batch_by_size` drops its last batch when that batch is not a
   multiple of `--required-batch-size-multiple` (default 8): fairseq-generate then silently leaves up to 7
   test sentences out of its BLEU, and fairseq-validate / eval-lm out of the loss (fairseq issue #5036). The
   items of the dropped batch come back as one last, smaller batch.
10. **numpy 2.** Three fairseq data modules use numpy 1 names that numpy 2 removed: `np.compat.long`
   (`token_block_dataset`: `--sample-break-mode eos`, which fairseq's language_modeling task also uses for
   its Python API and fairseq-interactive; `language_pair_dataset` with `--num-batch-buckets`) and
   `np.percentile(..., interpolation=)` (`data_utils.get_buckets`, the same flag). Their `np` is a view of
   numpy with those names spelled as numpy 2 has them; under numpy 1 it changes nothing.
11. **`--bf16` trains on a GPU or CPU.** fairseq 0.12's argument parser also switches `--tpu` on for every
   `--bf16` (`options.parse_args_and_arch`); the trainer then asks torch_xla for a TPU and fairseq-train
   --bf16 failed on every other machine. Unless `--tpu` is on its command line, fairseq-train keeps `tpu`
   off: `--bf16` trains with bfloat16 weights on the device it runs on (CUDA, or `--cpu`). `--fp16`
   without a GPU (fairseq's FP16 optimizer keeps its float32 copy on CUDA) is refused in one line that
   names --bf16, where torch's "Found no NVIDIA driver" came from deep inside the optimizer; `--amp`
   without a GPU, which trains in float32 (fairseq's autocast is CUDA's), says so in one warning.
12. **Diverse beam search keeps each sentence's counts** (`--diverse-beam-groups`). `DiverseBeamSearch`
   stores its group-overlap counts by the batch's rows at the first step and from then on reads and
   writes them by the sentences' dataset ids, which the generator passes: fairseq-generate raised
   IndexError for any id beyond the batch size, and a batch whose ids stayed below it (one batch, the hub's
   `translate`) penalised each sentence with another's counts. The search now gets each sentence's row.
13. **`--no-repeat-ngram-size` without fairseq's CUDA extension** (every CPU, and a GPU where the
   extension is not built, as in the pip wheels) banned nothing: the Python fallback takes the last n-1
   columns of the generator's whole token buffer, which are padding, as the newest tokens (fairseq issues
   #4709, #5206). It now gets the tokens up to the current step.
14. **Validation builds its own streams.** While fairseq's trainer builds a validation iterator, the task
   has `building_valid_iterator` set: `--task char_lm` then names its streams apart from the training
   stream of the same split, whose carried state `--valid-subset train` overwrote (training changed, or
   failed with another `--batch-size-valid`).
15. **Data-parallel checkpoints hold every rank's carried state.** fairseq writes checkpoints on rank 0;
   `checkpoint_utils.save_checkpoint`, which every rank enters, first gathers the carried states of the
   language model's streams from all ranks (`models/carried_ranks.py`), so a resumed run gives each rank its
   own rows back. Before, every rank resumed from rank 0's rows: a data-parallel resume was not exact.
16. **Data-parallel resume.** With fairseq's default, rank 0 reads the checkpoint and broadcasts it; the other
   ranks read the broadcast with a bare `torch.load`, which torch >= 2.6 refuses for a fairseq checkpoint
   (its config). They now read it as rank 0 read the file (`checkpoint_files.safe_load`).
"""

import functools
import logging
import os
import re
import shutil
import signal
import sys
import types

import numpy as np
import torch
from fairseq import checkpoint_utils, search, utils
from fairseq.data import data_utils
from fairseq.distributed import utils as distributed_utils
from fairseq.file_io import PathManager
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.trainer import Trainer
from omegaconf import OmegaConf

from hyperfairseq import checkpoint_files
from hyperfairseq.data import binarised
from hyperfairseq.errors import InputError, install_excepthook, program_name
from hyperfairseq.models.carried_ranks import data_parallel, gather_rows
from hyperfairseq.stop_signals import StopRequest

logger = logging.getLogger("hyperfairseq.fairseq_patches")
_PATCHED = "_hyperfairseq_patched"


def install() -> None:
    """Apply every change once; the training ones only inside fairseq-train."""
    install_excepthook()
    if getattr(checkpoint_utils, _PATCHED, False):
        return
    setattr(checkpoint_utils, _PATCHED, True)
    checkpoint_utils.torch = _WeightsOnlyTorch()
    checkpoint_utils.PathManager = _AtomicCopyPathManager
    checkpoint_utils.torch_persistent_save = _whole_file(checkpoint_utils.torch_persistent_save)
    checkpoint_utils.load_model_ensemble_and_task = _named_missing(checkpoint_utils.load_model_ensemble_and_task)
    checkpoint_utils.load_checkpoint = _resume_safely(checkpoint_utils.load_checkpoint)
    utils.clip_grad_norm_ = _float64_aware(utils.clip_grad_norm_)
    _name_translation_data()
    data_utils.batch_by_size = _keep_last_batch(data_utils.batch_by_size)
    _give_numpy1_names()
    search.DiverseBeamSearch.step = _by_batch_rows(search.DiverseBeamSearch.step)
    NGramRepeatBlock.forward = _tokens_so_far(NGramRepeatBlock.forward)
    Trainer.get_valid_iterator = _marks_validation(Trainer.get_valid_iterator)
    checkpoint_utils.save_checkpoint = _gathers_carried_states(checkpoint_utils.save_checkpoint)
    distributed_utils.torch = _SafeBroadcastTorch()
    train_module = _running_fairseq_train()
    if train_module is not None:
        train_module.validate_and_save = _stop_on_signal(train_module.validate_and_save)
        train_module.convert_namespace_to_omegaconf = _bf16_without_tpu(train_module.convert_namespace_to_omegaconf)
        STOP.install()


# -- 1. safe reading ------------------------------------------------------------------------------


class _TorchView:
    """`torch` as one fairseq module sees it: everything is torch's except what a subclass defines."""

    def __getattr__(self, name):
        return getattr(torch, name)


class _WeightsOnlyTorch(_TorchView):
    """`torch` as fairseq.checkpoint_utils sees it: `load` reads safely and checks the format."""

    @staticmethod
    def load(f, map_location=None, **_ignored):
        name = getattr(f, "name", f)
        if isinstance(name, str) and os.path.isfile(name):
            checkpoint_files.check_file(name)
            f = name  # read by path: safe_load then tells a truncated archive from other damage
        state = checkpoint_files.safe_load(f, str(name), map_location)
        return checkpoint_files.require_fairseq_state(state, str(name))


def _named_missing(load):
    @functools.wraps(load)
    def load_model_ensemble_and_task(filenames, *args, **kwargs):
        for filename in filenames:
            sharded = str(filename)[:-3] + "-shard0.pt"
            if "://" not in str(filename) and not os.path.exists(sharded):
                checkpoint_files.check_file(str(filename))
        return load(filenames, *args, **kwargs)

    return load_model_ensemble_and_task


# -- 2. atomic copies -----------------------------------------------------------------------------


class _AtomicCopyPathManager(PathManager):
    @staticmethod
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        if PathManager.path_requires_pathmanager(dst_path):
            return PathManager.copy(src_path, dst_path, overwrite)
        tmp = dst_path + ".tmp"
        try:
            with STOP.writing(dst_path):
                _copy_file(src_path, tmp)
                os.replace(tmp, dst_path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return True


def _copy_file(src: str, tmp: str) -> None:
    shutil.copyfile(src, tmp)  # a function of its own: tests stall it or signal inside it (stalled_copy_train.py)


# -- 3 and 4. resuming ----------------------------------------------------------------------------

RESUMABLE = re.compile(r"checkpoint(_last|\d+|_\d+_\d+)\.pt$")


def resume_candidates(save_dir: str):
    """fairseq's own checkpoints in `save_dir`, newest first (checkpoint_last.pt first on a tie)."""
    if not os.path.isdir(save_dir):
        return []
    names = [n for n in os.listdir(save_dir) if RESUMABLE.fullmatch(n)]
    paths = [os.path.join(save_dir, n) for n in names]
    return sorted(paths, key=lambda p: (os.path.getmtime(p), p.endswith("checkpoint_last.pt")), reverse=True)


def newest_intact(save_dir: str):
    """(path to resume from or None, damaged paths skipped on the way).

    Normally checkpoint_last.pt is the newest file and is taken. An intact checkpoint newer than it is taken
    only if it holds more updates: a run killed between writing checkpoint_E_U.pt and replacing
    checkpoint_last.pt left the newer one ahead, but a save-dir copied without its timestamps (`cp -r`)
    makes any file look newer, and rolling back to it lost updates and overwrote the newer checkpoints."""
    damaged, newer = [], []  # newer: intact checkpoints newer than checkpoint_last.pt, newest first
    last, best = os.path.join(save_dir, "checkpoint_last.pt"), os.path.join(save_dir, "checkpoint_best.pt")
    last_usable = checkpoint_files.is_intact(last)
    if not last_usable and os.path.isfile(last):
        damaged.append(last)
    for path in resume_candidates(save_dir) + ([best] if os.path.isfile(best) else []):
        if path == last:
            if not last_usable:
                continue
            updates = _updates_in(last) if newer else None  # read once; normally no file is newer
            return next((p for p in newer if _updates_in(p) > updates), last), damaged
        if not checkpoint_files.is_intact(path):
            damaged.append(path)
        elif not last_usable:
            return path, damaged  # the newest intact one
        else:
            newer.append(path)
    return None, damaged


def _updates_in(path: str) -> int:
    """The update count a checkpoint was saved at (fairseq's optimizer history), -1 if it holds none."""
    history = checkpoint_files.safe_load(path, path).get("optimizer_history") or [{}]
    return int(history[-1].get("num_updates", -1))


def _resume_safely(load_checkpoint):
    @functools.wraps(load_checkpoint)
    def resume(cfg, trainer, **passthrough):
        default = (cfg.restore_file == "checkpoint_last.pt" and not cfg.finetune_from_model
                   and getattr(cfg, "continue_once", None) is None and not trainer.checkpoint_suffix)
        if cfg.restore_file != "checkpoint_last.pt" and not trainer.checkpoint_suffix:
            try:  # fairseq would start from scratch, silently, when the file named is not there
                checkpoint_files.check_file(cfg.restore_file)
            except checkpoint_files.CheckpointError as err:
                raise checkpoint_files.CheckpointError(f"--restore-file {err}") from None
        chosen, damaged = newest_intact(cfg.save_dir) if default else (None, [])
        if default and chosen is None and damaged:
            raise checkpoint_files.CheckpointError(
                f"{cfg.save_dir}: no intact checkpoint to resume from ({', '.join(map(os.path.basename, damaged))} "
                "damaged); move them away to start from scratch")
        original = cfg.restore_file
        if chosen is not None and os.path.basename(chosen) != "checkpoint_last.pt":
            logger.warning("resuming from %s, the newest intact checkpoint (checkpoint_last.pt is %s)", chosen,
                           "damaged" if any(p.endswith("checkpoint_last.pt") for p in damaged) else "older")
            cfg.restore_file = os.path.abspath(chosen)
        try:
            extra_state, epoch_itr = load_checkpoint(cfg, trainer, **passthrough)
        finally:
            cfg.restore_file = original
        if extra_state is not None:
            _exit_if_finished(trainer)
        STOP.armed = True
        return extra_state, epoch_itr

    return resume


def _exit_if_finished(trainer) -> None:
    opt, updates = trainer.cfg.optimization, trainer.get_num_updates()
    hours = trainer.cumulative_training_time() / 3600
    if opt.max_update and updates >= opt.max_update:
        why = f"is at update {updates} and --max-update is {opt.max_update} (raise it to train further)"
    elif opt.stop_time_hours and opt.stop_time_hours > 0 and hours > opt.stop_time_hours:
        why = f"has trained {hours:.3f} h and --stop-time-hours is {opt.stop_time_hours} (raise it to train further)"
    else:
        return
    if trainer.data_parallel_rank == 0:
        print(f"{program_name()}: nothing to do: the checkpoint in {trainer.cfg.checkpoint.save_dir} {why}",
              file=sys.stderr, flush=True)
    raise SystemExit(0)


# -- 5. signals -----------------------------------------------------------------------------------


def _requested(trainer) -> int:
    """The signal number if any rank was signalled (all ranks agree), else 0."""
    signum = STOP.signum
    if trainer.data_parallel_world_size > 1:
        flag = torch.tensor([float(signum)], device=trainer.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX,
                                     group=trainer.data_parallel_process_group)
        signum = int(flag.item())
    return signum


STOP = StopRequest(armed=False, unit="update", saving="checkpoint_last.pt")


def _whole_file(write):
    """`write(obj_or_src, path, ...)` inside `STOP.writing(path)`."""
    @functools.wraps(write)
    def wrapper(first, path, *args, **kwargs):
        with STOP.writing(path):
            return write(first, path, *args, **kwargs)

    return wrapper


def _stop_on_signal(validate_and_save):
    @functools.wraps(validate_and_save)
    def wrapper(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch):
        signum = _requested(trainer)
        if not signum:
            return validate_and_save(cfg, trainer, task, epoch_itr, valid_subsets, end_of_epoch)
        saved = checkpoint_utils.save_checkpoint(cfg.checkpoint, trainer, epoch_itr, None)
        if trainer.data_parallel_rank == 0:
            last = os.path.join(cfg.checkpoint.save_dir, "checkpoint_last.pt")
            what = (f"saved {last}; run the same command to continue" if saved and os.path.exists(last) else
                    f"saved {saved}" if saved else "nothing was saved (--no-save): the updates of this run are lost")
            print(f"{program_name()}: stopped by {signal.Signals(signum).name} after update "
                  f"{trainer.get_num_updates()}; {what}", file=sys.stderr, flush=True)
        raise SystemExit(128 + signum)

    return wrapper


def _running_fairseq_train():
    """The module object of the running fairseq-train (`fairseq_cli.train` or `__main__`), if any."""
    for name in ("fairseq_cli.train", "__main__"):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", "") or ""
        if path.replace(os.sep, "/").endswith("fairseq_cli/train.py") and hasattr(module, "validate_and_save"):
            return module
    return None


# -- 6. float64 gradient norms --------------------------------------------------------------------


def _float64_aware(clip_grad_norm_):
    @functools.wraps(clip_grad_norm_)
    def clip(params, max_norm, aggregate_norm_fn=None):
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        grads = [p.grad.detach() for p in params if p.grad is not None]
        if not grads or grads[0].dtype != torch.float64:
            return clip_grad_norm_(params, max_norm, aggregate_norm_fn)
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        if aggregate_norm_fn is not None:
            total = aggregate_norm_fn(total)
        if max_norm > 0:
            torch._foreach_mul_(grads, (float(max_norm) / (total + 1e-6)).clamp_(max=1))
        return total

    return clip


# -- 8. named translation data --------------------------------------------------------------------


def _name_translation_data() -> None:
    from fairseq.tasks import translation

    task = translation.TranslationTask
    setup, load_dictionary = task.setup_task.__func__, task.load_dictionary.__func__

    def setup_task(cls, cfg, **kwargs):
        for path in utils.split_paths(cfg.data):
            if "://" not in path and not os.path.isdir(path):
                raise InputError(f"{path}: no such data folder (the --destdir of fairseq-preprocess)")
        return setup(cls, cfg, **kwargs)

    def checked_dictionary(cls, filename):
        binarised.check_dictionary(filename)
        return load_dictionary(cls, filename)

    task.setup_task, task.load_dictionary = classmethod(setup_task), classmethod(checked_dictionary)
    translation.load_langpair_dataset = _named_split(translation.load_langpair_dataset)
    data_utils.load_indexed_dataset = _checked_split(data_utils.load_indexed_dataset)


def _named_split(load_langpair_dataset):
    @functools.wraps(load_langpair_dataset)
    def load(data_path, split, src, src_dict, tgt, *args, **kwargs):
        try:
            return load_langpair_dataset(data_path, split, src, src_dict, tgt, *args, **kwargs)
        except FileNotFoundError as error:  # fairseq: "Dataset not found: SPLIT (DATA)"
            raise InputError(f"{data_path}: no split {split!r} for {src}-{tgt} ({split}.{src}-{tgt}.{src}.idx "
                             "or the reverse pair); name one that fairseq-preprocess wrote") from error

    return load


def _checked_split(load_indexed_dataset):
    @functools.wraps(load_indexed_dataset)
    def load(path, *args, **kwargs):
        if "://" not in path and os.path.isfile(path + ".idx"):
            binarised.check_split(path)
        return load_indexed_dataset(path, *args, **kwargs)

    return load


# -- 9. every item batched ------------------------------------------------------------------------


def _keep_last_batch(batch_by_size):
    @functools.wraps(batch_by_size)
    def batched(indices, num_tokens_fn, *args, fixed_shapes=None, **kwargs):
        order = indices if isinstance(indices, np.ndarray) else np.fromiter(indices, dtype=np.int64, count=-1)
        batches = batch_by_size(order, num_tokens_fn, *args, fixed_shapes=fixed_shapes, **kwargs)
        if fixed_shapes is not None:
            return batches
        kept = sum(len(b) for b in batches)
        if kept < len(order):  # batches cover indices[:kept] in order; the rest was the dropped batch
            batches = list(batches) + [order[kept:]]
        return batches

    return batched


# -- 10. numpy 2 ----------------------------------------------------------------------------------


class _Numpy1Names:
    """`numpy` as fairseq's data modules see it: the numpy 1 names they use, in numpy 2's spelling."""

    compat = types.SimpleNamespace(long=np.int64)  # numpy 1's np.compat.long: the C long, int64 here

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def percentile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:  # renamed `method` in numpy 1.22; numpy 2.4 dropped the old name
            kwargs["method"] = interpolation
        return np.percentile(a, q, *args, **kwargs)


def _give_numpy1_names() -> None:
    from fairseq.data import language_pair_dataset, token_block_dataset

    for module in (data_utils, language_pair_dataset, token_block_dataset):
        module.np = _Numpy1Names()


# -- 11. --bf16 without a TPU, --fp16 only on CUDA ------------------------------------------------


def _bf16_without_tpu(convert_namespace_to_omegaconf):
    @functools.wraps(convert_namespace_to_omegaconf)
    def convert(args):
        if getattr(args, "bf16", False) and getattr(args, "tpu", False) and "--tpu" not in sys.argv[1:]:
            args.tpu = False  # set by the parser for --bf16 alone, not asked for
        no_gpu = getattr(args, "cpu", False) or not torch.cuda.is_available()
        if getattr(args, "fp16", False) and no_gpu:
            raise InputError("--fp16 needs a CUDA GPU (fairseq's FP16 optimizer keeps its float32 weights there); "
                             "on the CPU train with --bf16")
        if getattr(args, "amp", False) and no_gpu:
            logger.warning("--amp does nothing without a CUDA GPU (fairseq's autocast is CUDA's): this run trains "
                           "in float32; --bf16 trains in bfloat16 on the CPU")
        return convert_namespace_to_omegaconf(args)

    return convert


# -- 12. diverse beam search by batch rows --------------------------------------------------------


def _by_batch_rows(step):
    """`DiverseBeamSearch.step` given each sentence's row in the batch of its first step, where the
    generator passes dataset ids (`sample["id"]`, shrunk as sentences finish)."""

    @functools.wraps(step)
    def stepped(self, step_number, lprobs, scores, prev_output_tokens=None, original_batch_idxs=None):
        if original_batch_idxs is not None:
            if step_number == 0:
                self._hyperfairseq_first_ids = original_batch_idxs.clone()
            original_batch_idxs = row_of_id(self._hyperfairseq_first_ids, original_batch_idxs)
        return step(self, step_number, lprobs, scores, prev_output_tokens, original_batch_idxs)

    return stepped


def row_of_id(first_ids, ids):
    """The position of each of `ids` in `first_ids` (unique ids: one batch's sentences)."""
    ordered, order = first_ids.sort()
    return order[torch.searchsorted(ordered, ids)]


# -- 13. n-gram blocking in Python ----------------------------------------------------------------


def _tokens_so_far(forward):
    """`NGramRepeatBlock.forward` with the tokens up to `step` when it runs its Python fallback, which
    reads the last columns as the newest tokens; fairseq's CUDA extension indexes by `step` itself."""

    @functools.wraps(forward)
    def blocked(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        if not self.use_extension:
            tokens = tokens[:, : step + 1]
        return forward(self, tokens, lprobs, bsz, beam_size, step)

    return blocked


# -- 14. validation streams ----------------------------------------------------------------------------


def _marks_validation(get_valid_iterator):
    @functools.wraps(get_valid_iterator)
    def wrapper(self, *args, **kwargs):
        self.task.building_valid_iterator = True
        try:
            return get_valid_iterator(self, *args, **kwargs)
        finally:
            self.task.building_valid_iterator = False

    return wrapper


# -- 15. every rank's carried state ----------------------------------------------------------------------


def _gathers_carried_states(save_checkpoint):
    @functools.wraps(save_checkpoint)
    def save(cfg, trainer, *args, **kwargs):
        decoder = getattr(trainer.get_model(), "decoder", None)
        ranks = data_parallel()[1]
        if ranks == 1 or not getattr(decoder, "supports_carry", False):
            return save_checkpoint(cfg, trainer, *args, **kwargs)
        local = decoder.carried
        decoder.carried, decoder.carried_ranks = gather_rows(local), ranks
        try:
            return save_checkpoint(cfg, trainer, *args, **kwargs)
        finally:
            decoder.carried, decoder.carried_ranks = local, 1

    return save


# -- 16. reading rank 0's broadcast ------------------------------------------------------------------------


CONFIG_AS_CONTAINER = "hyperfairseq_cfg_as_container"


class _SafeBroadcastTorch(_TorchView):
    """`torch` as fairseq.distributed.utils sees it: the object rank 0 broadcasts is written as fairseq writes a
    checkpoint (its config as plain containers) and read safely, its config rebuilt as fairseq's loader does."""

    @staticmethod
    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and OmegaConf.is_config(obj.get("cfg")):
            plain = OmegaConf.to_container(obj["cfg"], resolve=True, enum_to_str=True)
            obj = {**obj, "cfg": plain, CONFIG_AS_CONTAINER: True}
        torch.save(obj, f, *args, **kwargs)

    @staticmethod
    def load(f, map_location=None, **_ignored):
        with torch.serialization.safe_globals([distributed_utils._TensorPlaceholder]):  # its tensors' slots
            obj = checkpoint_files.safe_load(f, "the checkpoint rank 0 broadcast", map_location)
        if isinstance(obj, dict) and obj.pop(CONFIG_AS_CONTAINER, False):
            obj["cfg"] = OmegaConf.create(obj["cfg"], flags={"allow_objects": True})
        return obj
