"""Sample from and score text with any hyperfairseq character (or byte) language model checkpoint.

    python -m hyperfairseq.sample --path checkpoints/checkpoint_best.pt --prefix "the company" \
        --temperature 0.8 --length 300 --seed 1
    python -m hyperfairseq.sample --path checkpoints/checkpoint_best.pt --score some_text.txt

Python API::

    from hyperfairseq.sample import CharLM
    lm = CharLM.from_checkpoint("checkpoints/checkpoint_best.pt")
    lm.score("the company said it expects")          # bits per character, line end included
    lm.sample("the company", length=200, temperature=0.8, seed=1)

Text is mapped to the model's symbols as the data was prepared: PTB-style characters (`_` for a space,
one end-of-line symbol per line; `hyperfairseq.data.char_corpus`) or bytes (`hyperfairseq.data.byte_corpus`).
The checkpoint is loaded through fairseq (weights_only), with `--data` overriding the folder of dict.txt.
"""

import argparse
import math
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F
from fairseq import checkpoint_utils

from hyperfairseq.data import byte_corpus
from hyperfairseq.data.char_corpus import SPACE, CorpusError, convert_lines
from hyperfairseq.modules import HyperLSTMState


class CharLM:
    """A loaded hyperfairseq LM with `score(text)` (bits per symbol) and `sample(prefix, ...)`."""

    def __init__(self, model, dictionary):
        self.model = model.eval()
        self.decoder = model.decoder
        self.dictionary = dictionary
        self.byte_level = byte_corpus.is_byte_dictionary(dictionary)
        self.never_sampled = [i for i in range(dictionary.nspecial) if i != dictionary.eos()]

    @classmethod
    def from_checkpoint(cls, path: str, data: Optional[str] = None) -> "CharLM":
        overrides = {"data": data} if data else None
        models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([path], arg_overrides=overrides)
        model = models[0]
        if not getattr(model.decoder, "supports_carry", False):
            raise ValueError(f"{path}: not a hyperfairseq language model checkpoint")
        return cls(model.float().cpu(), task.target_dictionary)

    # -- text <-> symbols --------------------------------------------------------------------------

    def encode(self, text: str, line_ends: bool = True) -> List[int]:
        """Symbols of `text`; for character models every line is followed by the end-of-line symbol."""
        if self.byte_level:
            return byte_corpus.bytes_to_ids(text.encode("utf-8"), self.dictionary)
        lines = text.split("\n")
        if lines and lines[-1] == "" and len(lines) > 1:
            lines = lines[:-1]
        symbols = set(self.dictionary.symbols)
        ids = []
        for i, line in enumerate(convert_lines(lines, "text", symbols)):
            ids += [self.dictionary.index(s) for s in line.split()]
            if line_ends or i < len(lines) - 1:
                ids.append(self.dictionary.eos())
        return ids

    def decode(self, ids: List[int]) -> str:
        if self.byte_level:
            return byte_corpus.ids_to_bytes(ids, self.dictionary).decode("utf-8", errors="replace")
        out = []
        for i in ids:
            if i == self.dictionary.eos():
                out.append("\n")
            elif i < self.dictionary.nspecial:
                out.append("?")
            else:
                symbol = self.dictionary[i]
                out.append(" " if symbol == SPACE else symbol)
        return "".join(out)

    # -- scoring and sampling ----------------------------------------------------------------------

    @torch.no_grad()
    def run(self, ids: List[int], state: Optional[HyperLSTMState] = None):
        tokens = torch.tensor([ids], dtype=torch.long)
        logits, extra = self.decoder(tokens, state=state)
        return logits[0].float(), extra["state"]

    @torch.no_grad()
    def score(self, text: str) -> float:
        """Bits per symbol of `text`, read from the start of a line (after an end-of-line symbol)."""
        ids = self.encode(text)
        if not ids:
            raise ValueError("nothing to score: the text is empty")
        logits, _ = self.run([self.dictionary.eos()] + ids[:-1])
        nll = F.cross_entropy(logits, torch.tensor(ids), reduction="sum").item()
        return nll / len(ids) / math.log(2)

    @torch.no_grad()
    def sample(self, prefix: str = "", length: int = 200, temperature: float = 1.0, seed: Optional[int] = None) -> str:
        """`prefix` followed by `length` sampled symbols (softmax at `temperature`)."""
        if temperature <= 0:
            raise ValueError(f"temperature must be positive; got {temperature}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        context = [self.dictionary.eos()] + self.encode(prefix, line_ends=False)
        logits, state = self.run(context)
        last = logits[-1]
        sampled = []
        for _ in range(length):
            probs = F.softmax(last / temperature, dim=-1)
            probs[self.never_sampled] = 0  # bos, pad, unk; the end-of-line symbol stays
            token = torch.multinomial(probs, 1, generator=generator).item()
            sampled.append(token)
            logits, state = self.run([token], state)
            last = logits[-1]
        return prefix + self.decode(sampled)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hyperfairseq.sample", description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="a hyperfairseq LM checkpoint")
    parser.add_argument("--data", help="folder with the model's dict.txt, if it moved since training")
    parser.add_argument("--prefix", default="", help="text to continue")
    parser.add_argument("--length", type=int, default=300, help="symbols to sample")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--score", metavar="FILE", help="print the bits per symbol of FILE instead of sampling")
    args = parser.parse_args(argv)
    try:
        lm = CharLM.from_checkpoint(args.path, args.data)
        if args.score:
            with open(args.score, encoding="utf-8") as f:
                print(f"{lm.score(f.read()):.4f} bits per symbol")
        else:
            print(lm.sample(args.prefix, args.length, args.temperature, args.seed))
    except (CorpusError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
