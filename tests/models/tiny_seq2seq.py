"""Tiny random text encoder-decoders made by transformers inside the tests (no download), with a word-level
tokenizer that ends every text with </s> as T5's does, so text-to-text parity runs in seconds."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.tiny_models import save_tokenizer, word_tokenizer

VOCAB = 64
T5_SPECIAL = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "[UNK]"}
# odd shapes: heads of width 6 (not d_model / heads = 8), few buckets and a short max distance so that a dozen
# tokens reach the logarithmic and the saturated buckets in both directions
TINY_T5 = dict(vocab_size=VOCAB, d_model=32, d_kv=6, d_ff=48, num_layers=2, num_decoder_layers=2, num_heads=4,
               relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0, eos_token_id=1,
               decoder_start_token_id=0, dropout_rate=0.0)


def scramble(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random (norms around 1), so parity sees each one; an untrained model's outputs are too
    uniform to tell weights apart."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            p.copy_(noise * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name.lower() else 0.0))


def make_t5(folder: Path, seed: int = 0, model_class: Any = None, config_class: Any = None, **config: Any):
    """A tiny random T5ForConditionalGeneration (v1.0 by default; feed_forward_proj="gated-gelu",
    tie_word_embeddings=False for v1.1) saved to `folder`; returns it (eager, eval)."""
    import transformers as tf
    torch.manual_seed(seed)
    cfg = (config_class or tf.T5Config)(**{**TINY_T5, **config})
    cfg._attn_implementation = "eager"
    model = (model_class or tf.T5ForConditionalGeneration)(cfg).eval()
    scramble(model, seed)
    model.save_pretrained(folder)
    save_tokenizer(word_tokenizer(["<pad>", "</s>"], "$A </s>", "$A </s> $B:1 </s>:1"), folder, T5_SPECIAL)
    return model


def hf_tokenizer(folder: Path):
    import transformers as tf
    return tf.PreTrainedTokenizerFast.from_pretrained(str(folder))
