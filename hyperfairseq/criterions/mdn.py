"""Criterion `mdn`: negative log-likelihood of pen rows under the mixture-density output (Table 5).

HyperNetworks (arXiv 1609.09106v4) §4.5; Graves (2013) Eq. 26; paper-spec §3.5. The model returns a
`StrokeModelOutput` (modules/mdn.py); this criterion reads its `mixture` field by name.

Logged, all in nats:
* `loss`      per point: −log p summed over the batch's points / points (what is optimised);
* `log_loss`  the paper's metric: −log p summed over each line (mixture + end-of-stroke terms),
              averaged over lines. Table 5 reports it on IAM-OnDB's validation set (lower is better).
"""

from dataclasses import dataclass

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from hyperfairseq.modules.mdn import point_log_prob


@dataclass
class MixtureDensityCriterionConfig(FairseqDataclass):
    pass


def line_nll(mixture, target: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B,) −log p of each line: the sum over its first `lengths` points of the mixture and Bernoulli terms."""
    logp = point_log_prob(mixture, target.to(mixture.mu.dtype))
    steps = torch.arange(target.shape[1], device=target.device)
    mask = steps.unsqueeze(0) < lengths.to(target.device).unsqueeze(1)
    return -torch.where(mask, logp, torch.zeros_like(logp)).sum(1)  # padded steps never reach the sum


@register_criterion("mdn", dataclass=MixtureDensityCriterionConfig)
class MixtureDensityCriterion(FairseqCriterion):
    """`--criterion mdn`: sample_size is the number of points, so gradients are per-point means."""

    def forward(self, model, sample, reduce=True):
        net_input = sample["net_input"]
        output = model(**net_input)
        nll = line_nll(output.mixture, sample["target"], net_input["lengths"])
        loss = nll.sum() if reduce else nll
        sample_size = sample["ntokens"]
        logging_output = {
            "loss": loss.data,
            "ntokens": sample["ntokens"],
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        loss_sum = sum(log.get("loss", 0) for log in logging_outputs)
        ntokens = sum(log.get("ntokens", 0) for log in logging_outputs)
        nsentences = sum(log.get("nsentences", 0) for log in logging_outputs)
        metrics.log_scalar("loss", loss_sum / max(ntokens, 1), ntokens, round=4)
        metrics.log_scalar("log_loss", loss_sum / max(nsentences, 1), nsentences, round=2)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

