"""Activation patching of every layer x position of SmolLM2 at 24 tokens: exact against attribution patching,
and our exact patching against a plain PyTorch hooks loop on transformers with the same weights.

  exact        analysis.patching.activation_patching(model, clean, corrupted, "resid_pre", " Mary", " John"):
               30 layers x 24 positions = 720 patched runs (batched per layer, the shared prefix run once)
  attribution  analysis.patching.attribution_patching(...) on the same inputs: one clean forward, one corrupted
               forward and one backward
  transformers LlamaForCausalLM (its default attention) on the converted SmolLM2 folder: a forward pre-hook on
               decoder layer l replaces position p of its input with the clean run's; one forward per patch,
               batch 1, as a notebook would write it
Prints the median seconds of each, exact / attribution (goal >= 20x), the correlation of the two maps, ours /
transformers (goal <= 1.0), and how far our numbers are from transformers'. CPU seconds (both threads) are
printed too: on a busy machine wall time mostly measures the neighbours.
Run: .venv/bin/python bench/patching.py [--repeats N] [--tokens 24] [--threads 2] [--no-prefix]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from analysis.patching import (_activation_patching, activation_patching, attribution_patching,  # noqa: E402
                               pearson, prepare_patching)
from models import load_model  # noqa: E402
from models.embedded import EMBEDDED  # noqa: E402

EXTRA = "after a long and tiring day at work in the old part of the city near the river and the park".split()


def prompts_of_length(model, n_tokens: int) -> tuple[str, str]:
    """An indirect-object pair (Wang et al. 2022) padded with words to exactly ``n_tokens`` tokens each."""
    for used in range(len(EXTRA) + 1):
        middle = " ".join(EXTRA[:used])
        clean = f"When John and Mary went to the shops {middle}, John gave the bag to".replace("  ", " ")
        corrupted = clean.replace(", John gave", ", Mary gave")
        n = model.encode(clean).input_ids.shape[1]
        if n == n_tokens and model.encode(corrupted).input_ids.shape[1] == n_tokens:
            return clean, corrupted
        if n > n_tokens:
            break
    raise SystemExit(f"cannot make a {n_tokens}-token prompt pair from these words")


def transformers_patching(reference, clean_ids, corrupted_ids, answer_id: int, wrong_id: int,
                          only: list[int] | None = None) -> torch.Tensor:
    """(layers, positions) patched metrics with plain hooks on transformers, one forward per patch
    (rows of layers not in ``only`` stay 0)."""
    layers = reference.model.layers
    T = clean_ids.shape[1]
    clean: dict[int, torch.Tensor] = {}

    def grab(layer):
        def hook(module, args, kwargs):
            clean[layer] = (args[0] if args else kwargs["hidden_states"]).clone()
        return hook

    handles = [block.register_forward_pre_hook(grab(l), with_kwargs=True) for l, block in enumerate(layers)]
    with torch.no_grad():
        reference(input_ids=clean_ids)
    for handle in handles:
        handle.remove()
    result = torch.zeros(len(layers), T, dtype=torch.float64)
    for layer, block in enumerate(layers):
        if only is not None and layer not in only:
            continue
        for position in range(T):
            def patch(module, args, kwargs, layer=layer, position=position):
                x = (args[0] if args else kwargs["hidden_states"]).clone()
                x[:, position] = clean[layer][:, position]
                return ((x, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": x})
            handle = block.register_forward_pre_hook(patch, with_kwargs=True)
            try:
                with torch.no_grad():
                    logits = reference(input_ids=corrupted_ids).logits[0, -1].double()
            finally:
                handle.remove()
            result[layer, position] = logits[answer_id] - logits[wrong_id]
    return result


def timed(fn):
    start, start_cpu = time.perf_counter(), time.process_time()
    value = fn()
    return value, time.perf_counter() - start, time.process_time() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=1, help="interleaved rounds (each round runs every contender)")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-prefix", action="store_true",
                        help="also time our exact patching without sharing the prefix below each layer")
    args = parser.parse_args()
    import transformers as tf

    torch.set_num_threads(args.threads)
    model = load_model("smollm2")
    clean, corrupted = prompts_of_length(model, args.tokens)
    answer, wrong = " Mary", " John"
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    reference = tf.AutoModelForCausalLM.from_pretrained(EMBEDDED["smollm2"](), torch_dtype=torch.float32).eval()
    print(f"torch {torch.__version__}, transformers {tf.__version__}, threads {torch.get_num_threads()}, smollm2 "
          f"({model.config.n_layers} layers, d {model.config.d_model}), {setup.n_positions} tokens, "
          f"{model.config.n_layers * setup.n_positions} patched runs; transformers attention "
          f"{reference.config._attn_implementation}")
    print(f"clean:     {clean!r}\ncorrupted: {corrupted!r}\nmetric: logit[{answer!r}] - logit[{wrong!r}]")
    clean_ids, corrupted_ids = model.encode(clean).input_ids, model.encode(corrupted).input_ids

    contenders = {
        "exact": lambda: activation_patching(model, clean, corrupted, "resid_pre", answer, wrong),
        "attribution": lambda: attribution_patching(model, clean, corrupted, "resid_pre", answer, wrong),
        "transformers": lambda: transformers_patching(reference, clean_ids, corrupted_ids, setup.answer_id,
                                                      setup.wrong_id),
    }
    if args.no_prefix:
        contenders["exact, no shared prefix"] = lambda: _activation_patching(
            model, setup, "resid_pre", list(range(model.config.n_layers)), None, None, share_prefix=False)
    contenders["attribution"]()  # warm-up (allocator, first-call costs)
    wall = {k: [] for k in contenders}
    cpu = {k: [] for k in contenders}
    values = {}
    for round_ in range(args.repeats):
        for name, fn in contenders.items():
            values[name], w, c = timed(fn)
            wall[name].append(w)
            cpu[name].append(c)
            print(f"  round {round_ + 1}: {name:<24} {w:8.2f} s wall, {c:8.2f} s CPU", flush=True)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    exact, approx, theirs = values["exact"], values["attribution"], values["transformers"]
    print()
    print(f"exact patching (ours)         {med['exact']:8.2f} s  (CPU {med_cpu['exact']:.2f} s)")
    print(f"attribution patching (ours)   {med['attribution']:8.2f} s  (CPU {med_cpu['attribution']:.2f} s)")
    print(f"plain hooks on transformers   {med['transformers']:8.2f} s  (CPU {med_cpu['transformers']:.2f} s)")
    if args.no_prefix:
        print(f"exact, no shared prefix       {med['exact, no shared prefix']:8.2f} s  "
              f"(CPU {med_cpu['exact, no shared prefix']:.2f} s)")
    print(f"exact / attribution time:     {med['exact'] / med['attribution']:8.1f}x  (goal >= 20x; CPU "
          f"{med_cpu['exact'] / med_cpu['attribution']:.1f}x)")
    print(f"correlation exact vs attribution: {pearson(exact, approx):.3f}")
    print(f"ours / transformers time:     {med['exact'] / med['transformers']:8.3f}   (goal <= 1.0; CPU "
          f"{med_cpu['exact'] / med_cpu['transformers']:.3f})")
    print(f"max |ours - transformers|:    {float((exact - theirs).abs().max()):.2e} "
          f"(patched metrics range {float(exact.min()):.3f} .. {float(exact.max()):.3f})")


if __name__ == "__main__":
    main()
