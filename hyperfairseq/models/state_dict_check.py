"""A clear message when a checkpoint does not fit the model being loaded, naming the likely cause."""

import hashlib
from typing import Collection, Mapping, Optional

from torch import Tensor, nn

from hyperfairseq.errors import InputError


def _vocabulary_only(checkpoint: Tensor, model: Tensor, vocab_sizes: Collection[int]) -> bool:
    """True when the shapes differ only where the model's size is one of its dictionaries' sizes."""
    if checkpoint.dim() != model.dim():
        return False
    return all(a == b or b in vocab_sizes for a, b in zip(checkpoint.shape, model.shape))


def check_state_dict_fits(model: nn.Module, state_dict: Mapping[str, Tensor], limit: int = 5,
                          vocab_sizes: Collection[int] = ()) -> None:
    """Raise InputError (a ValueError) naming the missing, unexpected and mis-shaped parameters, if any.

    fairseq wraps load errors in "please ensure that the architectures match"; this says *what* differs
    (e.g. a checkpoint of `lstm_lm_ptb_1000` loaded into `hyperlstm_lm_ptb` lacks every `.hyper.` tensor).
    When every difference is a dimension of the model's dictionaries (`vocab_sizes`), the cause is the
    data, not the architecture: another corpus, or a translation model run in the other direction.
    """
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith("_extra_state")}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mis_shaped = [k for k in sorted(set(own) & set(state_dict)) if tuple(state_dict[k].shape) != tuple(own[k].shape)]
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}" for k in mis_shaped]
    problems = []
    for title, items in (("missing in checkpoint", missing), ("not in model", unexpected), ("shape differs", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{title}: {', '.join(items[:limit])}{more}")
    if not problems:
        return
    cause = "was it trained with another --arch?"
    if mis_shaped and not (missing or unexpected) and all(
            _vocabulary_only(state_dict[k], own[k], vocab_sizes) for k in mis_shaped):
        sizes = " and ".join(str(s) for s in sorted(vocab_sizes))
        cause = (f"its vocabulary differs from the data's dictionaries ({sizes} symbols): was it trained on other "
                 "data, or in the other language direction (-s/-t)?")
    raise InputError(f"checkpoint does not fit this {type(model).__name__} ({cause}); " + "; ".join(problems))


def dictionary_md5(dictionary) -> Optional[str]:
    """Fingerprint of a dictionary's symbols in order (None without a dictionary, as in `params`)."""
    if dictionary is None:
        return None
    return hashlib.md5("\n".join(dictionary.symbols).encode("utf-8")).hexdigest()


class RemembersDictionary:
    """Mixin ahead of a fairseq encoder or decoder: its checkpoint holds its dictionary's md5 (its extra state),
    and loading it beside another dictionary is refused, naming it (`check_extra_states` runs before any shape
    check; two dictionaries of one size would otherwise load and translate or score as garbage, silently)."""

    dictionary_file = "dictionary"  # how the message names the data's file
    dictionary_fix = "point --data / the data folder at the folder the model was trained on"

    def get_extra_state(self):
        return {"dictionary_md5": dictionary_md5(self.dictionary)}

    def check_extra_state(self, extra) -> None:
        theirs, ours = (extra or {}).get("dictionary_md5"), dictionary_md5(self.dictionary)
        if theirs and ours and theirs != ours:
            raise InputError(
                f"the checkpoint was trained with another dictionary (md5 {theirs}) than this data's "
                f"{self.dictionary_file} (md5 {ours}, {len(self.dictionary)} symbols): {self.dictionary_fix}"
            )

    def set_extra_state(self, extra) -> None:
        """None (a checkpoint written before the md5 was kept, or without extra states): no check."""
        self.check_extra_state(extra)


def dictionary_sizes(model: nn.Module) -> set:
    """The sizes of the dictionaries the model's encoder and decoder were built with."""
    parts = (getattr(model, name, None) for name in ("encoder", "decoder"))
    return {len(d) for d in (getattr(part, "dictionary", None) for part in parts) if d is not None}


def check_extra_states(model: nn.Module, state_dict: dict) -> None:
    """Each part's extra state first (`check_extra_state`: the LM decoder names another dictionary); a part whose
    extra state the checkpoint lacks (a checkpoint averaged or written without it) gets None: nothing saved."""
    for name, part in model.named_modules():
        if type(part).get_extra_state is nn.Module.get_extra_state:
            continue
        key = f"{name}._extra_state" if name else "_extra_state"
        state_dict.setdefault(key, None)
        if hasattr(part, "check_extra_state"):
            part.check_extra_state(state_dict[key])


class ChecksCheckpointFit:
    """Mixin ahead of a fairseq model class: a strict load first says what differs (`check_state_dict_fits`),
    after the model's own upgrade of older checkpoints (fairseq's `upgrade_state_dict`, idempotent)."""

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if strict:
            self.upgrade_state_dict(state_dict)
            check_extra_states(self, state_dict)
            check_state_dict_fits(self, state_dict, vocab_sizes=dictionary_sizes(self))
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
