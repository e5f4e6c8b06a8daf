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
Text follows the one rule of `hyperfairseq.data.char_corpus` (which characters have symbols, where lines
end). The checkpoint is loaded through fairseq with `torch.load(weights_only=True)`
(`hyperfairseq.checkpoint_files`), with `--data` overriding the folder of dict.txt.
"""

import math
import sys
from typing import List, Optional

import torch
import torch.nn.functional as F

from hyperfairseq import cli
from hyperfairseq.cli import load_model_and_task, run_main
from hyperfairseq.data import byte_corpus
from hyperfairseq.data.char_corpus import SPACE, convert_lines, split_lines
from hyperfairseq.errors import InputError
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
        model, _cfg, task = load_model_and_task(path, overrides)
        if not getattr(getattr(model, "decoder", None), "supports_carry", False):
            raise InputError(f"{path}: not a hyperfairseq language model checkpoint (a {type(model).__name__})")
        return cls(model.float().cpu(), task.target_dictionary)

    # -- text <-> symbols --------------------------------------------------------------------------

    def encode(self, text: str, line_ends: bool = True, source: str = "text") -> List[int]:
        """Symbols of `text`; for character models every line is followed by the end-of-line symbol.

        `line_ends=False` reads `text` as a prefix to continue: its last line ends only where `text` ends
        with a line break, and keeps its trailing spaces (mid-line, a space is a symbol the model reads;
        lines of the corpus, and so every earlier line, are stripped)."""
        if self.byte_level:
            return byte_corpus.bytes_to_ids(text.encode("utf-8"), self.dictionary)
        lines = split_lines(text)
        ended = line_ends or text.endswith("\n")
        last = "" if ended or not lines else lines[-1].lstrip(" ")
        trailing = len(last) - len(last.rstrip(" "))  # spaces after the last line's last character
        symbols = set(self.dictionary.symbols)
        ids = []
        for i, line in enumerate(convert_lines(lines, source, symbols)):
            ids += [self.dictionary.index(s) for s in line.split(" ") if s]
            if ended or i < len(lines) - 1:
                ids.append(self.dictionary.eos())
        return ids + [self.dictionary.index(SPACE)] * trailing

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
    def score(self, text: str, source: str = "text") -> float:
        """Bits per symbol of `text`, read from the start of a line (after an end-of-line symbol)."""
        ids = self.encode(text, source=source)
        if not ids:
            raise InputError(f"nothing to score: {source} is empty")
        logits, _ = self.run([self.dictionary.eos()] + ids[:-1])
        nll = F.cross_entropy(logits, torch.tensor(ids), reduction="sum").item()
        return nll / len(ids) / math.log(2)

    @torch.no_grad()
    def sample(self, prefix: str = "", length: int = 200, temperature: float = 1.0, seed: Optional[int] = None) -> str:
        """`prefix` followed by `length` sampled symbols (softmax at `temperature`; towards 0: greedy)."""
        if not (math.isfinite(temperature) and temperature > 0):
            raise InputError(f"--temperature must be a positive finite number; got {temperature}")
        if length < 0:
            raise InputError(f"--length must be >= 0 (symbols to sample); got {length}")
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        context = [self.dictionary.eos()] + self.encode(prefix, line_ends=False, source="--prefix")
        logits, state = self.run(context)
        last = logits[-1]
        sampled = []
        for _ in range(length):
            token = torch.multinomial(self.probabilities(last, temperature), 1, generator=generator).item()
            sampled.append(token)
            logits, state = self.run([token], state)
            last = logits[-1]
        return prefix + self.decode(sampled)

    def probabilities(self, logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """softmax(logits / temperature), zero for the symbols never sampled (bos, pad, unk).

        A temperature so small that logits / T overflows gets its limit, the most likely symbol:
        exp((l - max l) / T) over the symbols that may be sampled.
        """
        probs = F.softmax(logits / temperature, dim=-1)
        probs[self.never_sampled] = 0  # the end-of-line symbol stays
        if bool(torch.isfinite(probs).all()) and float(probs.sum()) > 0:
            return probs
        masked = logits.clone()
        masked[self.never_sampled] = -math.inf
        return F.softmax((masked - masked.max()) / temperature, dim=-1)


def main(argv=None) -> int:
    parser = cli.parser("sample", __doc__)
    parser.add_argument("--path", required=True, help="a hyperfairseq LM checkpoint")
    parser.add_argument("--data", help="folder with the model's dict.txt, if it moved since training")
    parser.add_argument("--prefix", default="", help="text to continue")
    parser.add_argument("--length", type=int, default=300, help="symbols to sample")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--score", metavar="FILE", help="print the bits per symbol of FILE instead of sampling")
    args = parser.parse_args(argv)
    if args.seed is not None and not -(2**63) <= args.seed < 2**64:  # what torch.Generator.manual_seed takes
        parser.error(f"--seed must lie in [-2**63, 2**64); got {args.seed}")

    def work():
        lm = CharLM.from_checkpoint(args.path, args.data)
        if args.score:
            with open(args.score, encoding="utf-8", newline="") as f:  # line ends as written: the one rule
                print(f"{lm.score(f.read(), args.score):.4f} bits per symbol")
        else:
            print(lm.sample(args.prefix, args.length, args.temperature, args.seed))

    return run_main(parser.prog, work, text_file=args.score and f"--score {args.score}")

if __name__ == "__main__":
    sys.exit(main())
