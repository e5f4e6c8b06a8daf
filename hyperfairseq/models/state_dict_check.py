"""A clear message when a checkpoint's parameters do not fit the model being loaded."""

from typing import Mapping

from torch import Tensor, nn

from hyperfairseq.errors import InputError


def check_state_dict_fits(model: nn.Module, state_dict: Mapping[str, Tensor], limit: int = 5) -> None:
    """Raise InputError (a ValueError) naming the missing, unexpected and mis-shaped parameters, if any.

    fairseq wraps load errors in "please ensure that the architectures match"; this says *what* differs
    (e.g. a checkpoint of `lstm_lm_ptb_1000` loaded into `hyperlstm_lm_ptb` lacks every `.hyper.` tensor).
    """
    own = {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}
    state_dict = {k: v for k, v in state_dict.items() if not k.endswith("_extra_state")}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    for title, items in (("missing in checkpoint", missing), ("not in model", unexpected), ("shape differs", shapes)):
        if items:
            more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
            problems.append(f"{title}: {', '.join(items[:limit])}{more}")
    if problems:
        raise InputError(
            f"checkpoint does not fit this {type(model).__name__} (was it trained with another --arch?); "
            + "; ".join(problems)
        )


class ChecksCheckpointFit:
    """Mixin ahead of a fairseq model class: a strict load first says what differs (`check_state_dict_fits`),
    after the model's own upgrade of older checkpoints (fairseq's `upgrade_state_dict`, idempotent)."""

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        if strict:
            self.upgrade_state_dict(state_dict)
            check_state_dict_fits(self, state_dict)
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)
