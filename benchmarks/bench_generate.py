"""Beam-search decoding speed: hyperlstm_mt vs fairseq's built-in `lstm` of the same hidden size and layers.

One process, one thread (unless --threads), the same source batches for every model, fairseq's own
SequenceGenerator. Models are built in memory (fairseq's built-in LSTM checkpoints hold argparse
Namespaces that torch >= 2.6 refuses to load with weights_only=True) with the same dictionaries.
Untrained weights decode to the length cap, so every model emits about the same number of tokens;
the ratio reported is tokens/s of the built-in LSTM over tokens/s of ours (target: <= 1.5), each model's
best of `--rounds` interleaved rounds.

    python benchmarks/bench_generate.py --data data-bin/bible_en_es_8k --out docs/runs/bench_generate_cpu.json
"""

import argparse
import os
import sys
import time

import torch
from fairseq.data import Dictionary, data_utils
from fairseq.models import ARCH_CONFIG_REGISTRY
from fairseq.models.lstm import LSTMModel
from fairseq.models.lstm import base_architecture as lstm_base_architecture
from fairseq.sequence_generator import SequenceGenerator

from hyperfairseq import run_record
from hyperfairseq.models.hyperlstm_mt import HyperLSTMTranslationModel


class _Task:
    def __init__(self, src: Dictionary, tgt: Dictionary):
        self.source_dictionary, self.target_dictionary = src, tgt


def load_sources(data: str, src: str, tgt: str, count: int):
    """(src dict, tgt dict, list of source token tensors) from a fairseq data-bin, or synthetic when data is None."""
    if data is None:
        d = Dictionary()
        for i in range(7996):
            d.add_symbol(f"w{i}")
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(10, 50, (count,), generator=g)
        sources = [
            torch.cat([torch.randint(4, len(d), (int(n),), generator=g), torch.tensor([d.eos()])]) for n in lengths
        ]
        return d, d, sources

    src_dict = Dictionary.load(os.path.join(data, f"dict.{src}.txt"))
    tgt_dict = Dictionary.load(os.path.join(data, f"dict.{tgt}.txt"))
    dataset = data_utils.load_indexed_dataset(os.path.join(data, f"test.{src}-{tgt}.{src}"), src_dict)
    if dataset is None:
        sys.exit(f"error: {data}/test.{src}-{tgt}.{src}.bin not found (prepare with scripts/prepare_parallel.sh)")
    return src_dict, tgt_dict, [dataset[i] for i in range(min(count, len(dataset)))]


def build_ours(arch: str, task, hidden: int, layers: int):
    cfg = argparse.Namespace(
        encoder_embed_dim=hidden, encoder_hidden_size=hidden, encoder_layers=layers, decoder_embed_dim=hidden,
        decoder_hidden_size=hidden, decoder_layers=layers, attention_dim=hidden,
    )
    ARCH_CONFIG_REGISTRY[arch](cfg)
    return HyperLSTMTranslationModel.build_model(cfg, task)


def build_builtin_lstm(task, hidden: int, layers: int):
    """fairseq's `lstm` arch with `hidden` units per cell (every encoder layer bidirectional, as fairseq does;
    ours has only the bottom one), dot-product attention with input feeding, `layers` + `layers` layers."""
    args = argparse.Namespace(
        encoder_embed_dim=hidden, encoder_hidden_size=hidden, encoder_layers=layers, encoder_bidirectional=True,
        decoder_embed_dim=hidden, decoder_hidden_size=hidden, decoder_layers=layers, decoder_out_embed_dim=hidden,
        decoder_attention="1", dropout=0.0, max_source_positions=1024, max_target_positions=1024,
        criterion="cross_entropy",
    )
    lstm_base_architecture(args)
    return LSTMModel.build_model(args, task)


def batches(sources, pad: int, size: int):
    for i in range(0, len(sources), size):
        chunk = sources[i : i + size]
        tokens = data_utils.collate_tokens(chunk, pad, left_pad=True)
        yield {"net_input": {"src_tokens": tokens, "src_lengths": torch.tensor([len(s) for s in chunk])}}


def time_generation(model, tgt_dict, sources, pad: int, args) -> dict:
    model.eval()
    gen = SequenceGenerator([model], tgt_dict, beam_size=args.beam, max_len_a=args.max_len_a, max_len_b=args.max_len_b)
    with torch.no_grad():
        gen.forward(next(batches(sources[: args.batch_size], pad, args.batch_size)))  # warm-up
        tokens, start = 0, time.perf_counter()
        for batch in batches(sources, pad, args.batch_size):
            for hyps in gen.forward(batch):
                tokens += len(hyps[0]["tokens"])
        seconds = time.perf_counter() - start
    return {
        "sentences": len(sources), "output_tokens": tokens, "seconds": round(seconds, 3),
        "sentences_per_s": round(len(sources) / seconds, 3), "tokens_per_s": round(tokens / seconds, 2),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=None, help="fairseq data-bin with a test split (default: synthetic sources)")
    p.add_argument("--source-lang", default="en")
    p.add_argument("--target-lang", default="es")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--sentences", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--beam", type=int, default=4)
    p.add_argument("--max-len-a", type=float, default=1.0)
    p.add_argument("--max-len-b", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the fastest per model counts")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    src_dict, tgt_dict, sources = load_sources(args.data, args.source_lang, args.target_lang, args.sentences)
    sources = sorted(sources, key=len, reverse=True)  # fairseq's LSTM packs batches sorted by length
    task = _Task(src_dict, tgt_dict)
    models = {
        "fairseq_lstm": build_builtin_lstm(task, args.hidden, args.layers),
        "hyperlstm_mt_small": build_ours("hyperlstm_mt_small", task, args.hidden, args.layers),
        "lstm_mt_small": build_ours("lstm_mt_small", task, args.hidden, args.layers),
    }
    results = {}
    for round_ in range(args.rounds):  # interleaved rounds, best per model: robust to load from other processes
        for name, model in models.items():
            timing = time_generation(model, tgt_dict, sources, src_dict.pad(), args)
            if name not in results or timing["seconds"] < results[name]["seconds"]:
                results[name] = timing
            print(f"round {round_}", name, timing, flush=True)
    for name, model in models.items():
        results[name]["parameters"] = sum(q.numel() for q in model.parameters())
    ratio = results["fairseq_lstm"]["tokens_per_s"] / results["hyperlstm_mt_small"]["tokens_per_s"]
    command = " ".join(["python", "benchmarks/bench_generate.py", *(argv if argv is not None else sys.argv[1:])])
    report = run_record.stamp(
        command, what="beam search decoding speed, in-memory untrained models, same sources, one process",
        settings={k: v for k, v in vars(args).items() if k != "out"}, results=results,
        slowdown_hyperlstm_vs_fairseq_lstm=round(ratio, 3), target_slowdown_at_most=1.5, meets_target=ratio <= 1.5,
        hardware=dict(run_record.hardware(), torch_threads=torch.get_num_threads()))
    print(f"slowdown (fairseq lstm tokens/s / hyperlstm tokens/s): {ratio:.2f} (target <= 1.5)")
    if args.out:
        run_record.write(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
