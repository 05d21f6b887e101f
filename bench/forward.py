"""Forward speed of our core against transformers 4.x on the same random weights.

Prints, for seq 32, 128 and 512 on MiniLM-size and BERT-base-size encoders, and for seq 128 and 512 on
Pythia-160M-, Gemma-2- and Qwen3-shaped decoders (`--decoders`; batch 1):
  capture ratio  = ours with full capture (every attention and hidden state)
                   / transformers eager with output_attentions and output_hidden_states   (goal <= 1.0)
  fast ratio     = ours without capture / transformers SDPA                                   (goal <= 1.10)
Each sample repeats a call until it fills --sample-seconds (short calls timed alone are mostly noise),
the four contenders interleaved; the median sample is reported.
Run: .venv/bin/python bench/forward.py [--batch N] [--repeats N] [--sample-seconds S]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._timing import interleaved_medians  # noqa: E402
from models import load_model  # noqa: E402

# decoders with the variants that matter for speed: NeoX's partial rotary and parallel block, Gemma 2's sandwich
# norms, soft-capping and alternating sliding windows, Qwen 3's q/k norms and grouped keys; ~0.1-0.6 B parameters
DECODERS = {
    "Pythia-160M": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(
        vocab_size=50304, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
        rotary_pct=0.25, max_position_embeddings=2048)),
    "Gemma-2-shaped": ("Gemma2Config", "Gemma2ForCausalLM", dict(
        vocab_size=32000, hidden_size=768, num_hidden_layers=12, num_attention_heads=8, num_key_value_heads=4,
        head_dim=96, intermediate_size=3072, sliding_window=256, query_pre_attn_scalar=96,
        max_position_embeddings=2048)),
    "Qwen3-0.6B-shaped": ("Qwen3Config", "Qwen3ForCausalLM", dict(
        vocab_size=151936, hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
        head_dim=128, intermediate_size=3072, max_position_embeddings=4096, tie_word_embeddings=True)),
}

SIZES = {"MiniLM-size": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
         "BERT-base-size": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seqs", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--sample-seconds", type=float, default=0.3)
    parser.add_argument("--decoders", action="store_true", help="also the decoder shapes, at seq 128 and 512")
    parser.add_argument("--only-decoders", action="store_true")
    args = parser.parse_args()
    import transformers as tf
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, transformers {tf.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"{'model':<19}{'seq':>5}{'ours capture ms':>17}{'eager+outputs ms':>18}{'capture ratio':>15}"
          f"{'ours fast ms':>14}{'sdpa ms':>10}{'fast ratio':>12}")
    for label, size in ({} if args.only_decoders else SIZES).items():
        config = tf.BertConfig(vocab_size=30522, max_position_embeddings=512, **size)
        with tempfile.TemporaryDirectory() as folder:
            tf.BertModel(config, add_pooling_layer=False).save_pretrained(folder)
            ours = load_model(folder)
            eager = tf.BertModel.from_pretrained(folder, attn_implementation="eager", add_pooling_layer=False).eval()
            sdpa = tf.BertModel.from_pretrained(folder, attn_implementation="sdpa", add_pooling_layer=False).eval()
        for seq in args.seqs:
            ids = torch.randint(1000, 30000, (args.batch, seq))
            mask = torch.ones_like(ids)
            with torch.inference_mode():
                medians = interleaved_medians({
                    "ours_capture": lambda: ours.forward(input_ids=ids, attention_mask=mask, capture=True),
                    "eager": lambda: eager(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True),
                    "ours_fast": lambda: ours.forward(input_ids=ids, attention_mask=mask, capture=False),
                    "sdpa": lambda: sdpa(input_ids=ids, attention_mask=mask),
                }, repeats=args.repeats, min_sample_seconds=args.sample_seconds)
            _print_row(label, seq, medians)

    if args.decoders or args.only_decoders:
        for label, (config_name, model_name, size) in DECODERS.items():
            _decoder(tf, label, getattr(tf, config_name)(**size), getattr(tf, model_name), args)


def _decoder(tf, label: str, config, model_class, args) -> None:
    """One decoder shape: ours (capture, fast) against transformers eager with outputs and its fastest attention."""
    with tempfile.TemporaryDirectory() as folder:
        model_class(config).save_pretrained(folder)
        ours = load_model(folder)
        eager = model_class.from_pretrained(folder, attn_implementation="eager").eval()
        # soft-capped scores have no fused kernel in transformers either: its fast path is eager then
        fast_impl = "eager" if getattr(config, "attn_logit_softcapping", None) else "sdpa"
        fast = model_class.from_pretrained(folder, attn_implementation=fast_impl).eval()
    for seq in [s for s in args.seqs if s >= 128] or [128, 512]:
        ids = torch.randint(10, config.vocab_size - 10, (args.batch, seq))
        mask = torch.ones_like(ids)
        with torch.inference_mode():
            medians = interleaved_medians({
                "ours_capture": lambda: ours.forward(input_ids=ids, attention_mask=mask, capture=True),
                "eager": lambda: eager(input_ids=ids, attention_mask=mask, output_attentions=True,
                                       output_hidden_states=True),
                "ours_fast": lambda: ours.forward(input_ids=ids, attention_mask=mask, capture=False),
                "sdpa": lambda: fast(input_ids=ids, attention_mask=mask),
            }, repeats=args.repeats, min_sample_seconds=args.sample_seconds)
        _print_row(label, seq, medians)


def _print_row(label: str, seq: int, medians: dict[str, float]) -> None:
    """One line of the table: both contenders' medians in ms and their ratios."""
    ms = {k: v * 1000 for k, v in medians.items()}
    print(f"{label:<19}{seq:>5}{ms['ours_capture']:>17.1f}{ms['eager']:>18.1f}"
          f"{ms['ours_capture'] / ms['eager']:>15.3f}{ms['ours_fast']:>14.1f}{ms['sdpa']:>10.1f}"
          f"{ms['ours_fast'] / ms['sdpa']:>12.3f}", flush=True)


if __name__ == "__main__":
    main()
