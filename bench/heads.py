"""Head surgery speed on a BERT-base-size random encoder (12 layers x 12 heads, d 768), batch 16.

Prints, at seq 128 and 512:
  ours ratio       = time of our unpruned model / time of ours with 50% of heads pruned (6 per layer)
  transformers     = the same ratio for transformers 4.x BertModel.prune_heads, same weights, same heads,
                     default (SDPA) attention; with --eager also its eager attention
  arithmetic       = the ratio the removed multiply-adds alone predict (projections, scores, weighted sum, MLP)
  tf .../ours pruned = transformers' pruned model's time over ours (> 1: our pruned model is faster)
Throughput is tokens per second, so "pruned over unpruned throughput" equals these time ratios.
Then, on the same batch (seq 128) with a random classification head: the time of the gradient
importance (Michel et al. 2019: one forward and backward) and of leave-one-out ablation of all
144 heads, and their ratio (goal >= 20).

Every model runs on the fast path (no capture), under inference mode, once per round in a
rotating order after warm-up. A ratio is the median over rounds of that round's paired ratio, so
a slow minute on a shared machine hits both sides of it. Each ratio is printed twice: from wall
time, and from this process's CPU time (which other processes' load does not inflate).
Run: .venv/bin/python bench/heads.py [--repeats N] [--seqs 128 512] [--eager] [--skip-importance]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from models import load_model  # noqa: E402

BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
BATCH = 16


def half_of_every_layer(n_layers: int, n_heads: int, seed: int = 0) -> dict[int, list[int]]:
    """A fixed random half of each layer's heads: 50% pruned, the same shape in every layer."""
    generator = torch.Generator().manual_seed(seed)
    return {layer: sorted(torch.randperm(n_heads, generator=generator)[: n_heads // 2].tolist())
            for layer in range(n_layers)}


def predicted_ratio(seq: int, d_model: int, d_mlp: int, heads: int, kept: int, d_head: int) -> float:
    """Multiply-adds per token and layer, unpruned over pruned (norms, softmax and embeddings left out)."""
    def macs(h: int) -> int:
        width = h * d_head
        return 4 * d_model * width + 2 * seq * width + 2 * d_model * d_mlp  # q, k, v, o; QK^T and PV; MLP
    return macs(heads) / macs(kept)


def timed_rounds(fns: dict, rounds: int, warmup: int = 1) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Every function once per round, the order rotating each round: wall and process-CPU seconds per run."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            w0, c0 = time.perf_counter(), time.process_time()
            fns[name]()
            wall[name].append(time.perf_counter() - w0)
            cpu[name].append(time.process_time() - c0)
    return wall, cpu


def paired_ratio(times: dict[str, list[float]], slow: str, fast: str) -> float:
    """Median over rounds of times[slow] / times[fast] measured in the same round."""
    return statistics.median(a / b for a, b in zip(times[slow], times[fast]))


def throughput(args, tf) -> None:
    config = tf.BertConfig(vocab_size=30522, max_position_embeddings=512, **BERT_BASE)
    torch.manual_seed(0)
    reference = tf.BertModel(config, add_pooling_layer=False).eval()
    spec = half_of_every_layer(config.num_hidden_layers, config.num_attention_heads)
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = load_model(folder)
        sdpa = tf.BertModel.from_pretrained(folder, attn_implementation="sdpa", add_pooling_layer=False).eval()
        eager = (tf.BertModel.from_pretrained(folder, attn_implementation="eager", add_pooling_layer=False).eval()
                 if args.eager else None)
    ours_pruned = ours.prune_heads(spec)
    sdpa_pruned = copy.deepcopy(sdpa)
    sdpa_pruned.prune_heads(spec)
    eager_pruned = None
    if eager is not None:
        eager_pruned = copy.deepcopy(eager)
        eager_pruned.prune_heads(spec)
    removed = ours.num_parameters() - ours_pruned.num_parameters()
    print(f"50% of heads pruned (6 of 12 per layer): {removed / 1e6:.1f}M parameters removed "
          f"({removed / ours.num_parameters():.1%} of {ours.num_parameters() / 1e6:.1f}M)")
    print("ratios are unpruned time / pruned time (= pruned throughput / unpruned), as wall | CPU time")
    header = f"{'seq':>5}{'ours ms':>10}{'pruned ms':>11}{'ours ratio':>16}{'tf sdpa ratio':>16}"
    header += f"{'tf eager ratio':>16}" if eager is not None else ""
    print(header + f"{'arithmetic':>12}{'tf sdpa/ours pruned':>21}"
          + (f"{'tf eager/ours pruned':>22}" if eager is not None else ""), flush=True)
    for seq in args.seqs:
        ids = torch.randint(1000, 30000, (BATCH, seq))
        mask = torch.ones_like(ids)
        fns = {
            "ours": lambda: ours.forward(input_ids=ids, attention_mask=mask, capture=False),
            "ours_pruned": lambda: ours_pruned.forward(input_ids=ids, attention_mask=mask, capture=False),
            "sdpa": lambda: sdpa(input_ids=ids, attention_mask=mask),
            "sdpa_pruned": lambda: sdpa_pruned(input_ids=ids, attention_mask=mask),
        }
        if eager is not None:
            fns["eager"] = lambda: eager(input_ids=ids, attention_mask=mask)
            fns["eager_pruned"] = lambda: eager_pruned(input_ids=ids, attention_mask=mask)
        with torch.inference_mode():
            check = (ours_pruned.forward(input_ids=ids[:2], attention_mask=mask[:2], capture=False).final
                     - sdpa_pruned(input_ids=ids[:2], attention_mask=mask[:2]).last_hidden_state).abs().max()
            assert check < 1e-4, f"pruned models disagree by {check}"  # same numbers, or the timing means nothing
            wall, cpu = timed_rounds(fns, rounds=args.repeats, warmup=1)
        arithmetic = predicted_ratio(seq, config.hidden_size, config.intermediate_size, 12, 6, 64)
        both = lambda slow, fast: f"{paired_ratio(wall, slow, fast):.3f} | {paired_ratio(cpu, slow, fast):.3f}"
        ms = lambda name: statistics.median(wall[name]) * 1e3
        line = f"{seq:>5}{ms('ours'):>10.0f}{ms('ours_pruned'):>11.0f}{both('ours', 'ours_pruned'):>16}"
        line += f"{both('sdpa', 'sdpa_pruned'):>16}"
        if eager is not None:
            line += f"{both('eager', 'eager_pruned'):>16}"
        line += f"{arithmetic:>12.3f}{both('sdpa_pruned', 'ours_pruned'):>21}"
        if eager is not None:
            line += f"{both('eager_pruned', 'ours_pruned'):>22}"
        print(line, flush=True)  # the last columns: > 1 when our pruned model is faster than theirs


def importance(args, tf) -> None:
    from analysis.head_importance import compute_ablation_importance, compute_gradient_importance
    from analysis.metrics import EvalBatch, EvalSet

    config = tf.BertConfig(vocab_size=30522, max_position_embeddings=512, num_labels=2, **BERT_BASE)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        tf.BertForSequenceClassification(config).save_pretrained(folder)
        model = load_model(folder)
    seq = args.importance_seq
    ids = torch.randint(1000, 30000, (BATCH, seq))
    ids[:, 0] = 101  # [CLS]
    batch = EvalBatch(ids, torch.ones_like(ids), torch.zeros_like(ids), torch.randint(0, 2, (BATCH,)))
    data = EvalSet("sequence-classification", (batch,), tuple(f"example {i}" for i in range(BATCH)))
    wall, cpu = timed_rounds({"gradient": lambda: compute_gradient_importance(model, data)}, rounds=args.repeats)
    gradient_wall, gradient_cpu = statistics.median(wall["gradient"]), statistics.median(cpu["gradient"])
    print(f"gradient importance, batch {BATCH} x seq {seq}: {gradient_wall:.2f} s wall, {gradient_cpu:.2f} s CPU "
          f"(median of {args.repeats})", flush=True)
    w0, c0 = time.perf_counter(), time.process_time()
    result = compute_ablation_importance(model, data)
    ablation_wall, ablation_cpu = time.perf_counter() - w0, time.process_time() - c0
    print(f"leave-one-out ablation of all {int(result.present.sum())} heads, same batch: {ablation_wall:.1f} s wall, "
          f"{ablation_cpu:.1f} s CPU (one run; the batch stacked for several heads per pass)")
    print(f"gradient importance over ablation: {ablation_wall / gradient_wall:.1f}x faster by wall time, "
          f"{ablation_cpu / gradient_cpu:.1f}x by CPU time (goal >= 20)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seqs", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--importance-seq", type=int, default=128)
    parser.add_argument("--eager", action="store_true", help="also time transformers' eager attention")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-importance", action="store_true")
    args = parser.parse_args()
    import transformers as tf
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {tf.__version__}, threads {torch.get_num_threads()}, "
          f"batch {BATCH}, repeats {args.repeats}")
    if not args.skip_throughput:
        throughput(args, tf)
    if not args.skip_importance:
        importance(args, tf)


if __name__ == "__main__":
    main()
