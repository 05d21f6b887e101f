"""Integrated gradients (50 steps) at 128 tokens on the MiniLM classifier: ours against plain Captum on transformers.

Both sides explain the same logit of the same weights from the same padding baseline (special
tokens kept), with Captum's LayerIntegratedGradients on the token-embedding layer:
  ours   = analysis.attribution.attribute_text(..., methods=["integrated_gradients"]) at a fixed 50 steps
  theirs = LayerIntegratedGradients over BertForSequenceClassification (transformers' default attention)
Prints the median seconds of each, their ratio (goal <= 1.0) and our absolute time (goal <= 3 s on 2 cores),
plus how far the two attributions are apart. It also prints process CPU seconds (both threads) per run: on a
busy machine wall time mostly measures the neighbours, while CPU seconds / 2 estimates the wall time of an
idle 2-core machine.
Run: .venv/bin/python bench/attribution.py [--repeats N] [--tokens N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis.attribution import attribute_text  # noqa: E402
from analysis.attribution.text_inputs import encode_for_attribution  # noqa: E402
from models import load_model  # noqa: E402
from models.errors import ModelNotFoundError  # noqa: E402

WORDS = ("the film was slow at first but the acting and the music kept me watching until the very end "
         "and i would see it again with friends on a quiet evening").split()


def text_of_length(model, n_tokens: int) -> str:
    """A text that tokenizes to exactly `n_tokens` tokens, special tokens included."""
    words: list[str] = []
    while True:
        candidate = " ".join(words + [WORDS[len(words) % len(WORDS)]])
        n = model.encode(candidate).input_ids.shape[1]
        if n > n_tokens:
            raise SystemExit(f"cannot hit {n_tokens} tokens exactly with these words")
        words.append(WORDS[len(words) % len(WORDS)])
        if n == n_tokens:
            return candidate


def interleaved(fns: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall and process-CPU seconds of each function, run in turn after one warm-up each."""
    for fn in fns.values():
        fn()
    wall: dict[str, list[float]] = {name: [] for name in fns}
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return ({n: statistics.median(v) for n, v in wall.items()}, {n: statistics.median(v) for n, v in cpu.items()})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2: the goal's 2 cores)")
    args = parser.parse_args()
    import transformers as tf
    from captum.attr import LayerIntegratedGradients
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    try:  # the trained classifier when it is there; MiniLM with a fresh head has the same cost
        name, model = "minilm-sentiment", load_model("minilm-sentiment")
    except ModelNotFoundError:
        name, model = "minilm", load_model("minilm", task="sequence-classification")
    print(f"torch {torch.__version__}, transformers {tf.__version__}, threads {torch.get_num_threads()}, "
          f"model {name} (sequence classification), {args.tokens} tokens, {args.steps} steps")
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        reference = tf.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    text = text_of_length(model, args.tokens)
    inputs = encode_for_attribution(model, text)
    ids, mask, types, baseline = inputs.input_ids, inputs.attention_mask, inputs.token_type_ids, inputs.baseline_ids
    with torch.no_grad():
        ours_logits = model.forward(input_ids=ids, attention_mask=mask, token_type_ids=types, capture=False).logits
        their_logits = reference(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    target = int(ours_logits.argmax())
    print(f"logits max |ours - transformers| = {float((ours_logits - their_logits).abs().max()):.2e}; "
          f"attention {reference.config._attn_implementation}")

    fixed = {"integrated_gradients": {"n_steps": args.steps, "max_steps": args.steps}}

    def ours():
        return attribute_text(model, text, methods=["integrated_gradients"], target=target, params=fixed)

    def forward_func(input_ids, attention_mask, token_type_ids):
        return reference(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    lig = LayerIntegratedGradients(forward_func, reference.bert.embeddings.word_embeddings)

    def theirs():
        return lig.attribute(ids, baselines=baseline, target=target, additional_forward_args=(mask, types),
                             n_steps=args.steps, return_convergence_delta=True)

    report, (their_attr, their_delta) = ours(), theirs()
    ig = report.results["integrated_gradients"]
    gap = float((ig.scores - their_attr[0].sum(-1)).abs().max())
    print(f"per-token scores max |ours - captum on transformers| = {gap:.2e}; "
          f"delta ours {ig.convergence_delta:+.2e}, theirs {float(their_delta):+.2e}; "
          f"F(x) - F(baseline) = {ig.output_difference:+.4f}")
    wall, cpu = interleaved({"ours": ours, "theirs": theirs}, repeats=args.repeats)
    ratio = wall["ours"] / wall["theirs"]
    print(f"integrated gradients, median of {args.repeats}: ours {wall['ours']:.3f} s, "
          f"captum on transformers {wall['theirs']:.3f} s")
    print(f"ratio ours / theirs = {ratio:.3f} (goal <= 1.0); by CPU seconds {cpu['ours'] / cpu['theirs']:.3f}")
    print(f"absolute ours = {wall['ours']:.3f} s wall (goal <= 3 s on 2 cores); CPU {cpu['ours']:.3f} s over "
          f"{torch.get_num_threads()} threads, i.e. about {cpu['ours'] / torch.get_num_threads():.3f} s on an idle machine")
    adaptive = attribute_text(model, text, methods=["integrated_gradients"], target=target).results["integrated_gradients"]
    print(f"default run (starts at 50 steps, doubles while delta > 5%): {adaptive.n_steps} steps, "
          f"relative delta {adaptive.relative_delta:.2%}, {adaptive.seconds:.3f} s")


if __name__ == "__main__":
    main()
