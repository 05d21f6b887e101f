"""A tiny random CLIP checkpoint made by transformers in the test (no download), with a word-level tokenizer."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from tests.tiny_models import WORDS, save_tokenizer, word_tokenizer

SPECIAL = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
           "unk_token": "[UNK]"}


def make_clip(folder: Path, seed: int = 0):
    """Save a scrambled tiny CLIPModel to `folder`; return it (eager, eval). Odd shapes on purpose: towers of
    different widths, depths and head counts; a 30-pixel image cut into 5 x 5 patches."""
    import transformers as tf
    torch.manual_seed(seed)
    config = tf.CLIPConfig(
        text_config=dict(vocab_size=len(WORDS) + 3, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=20, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=24, intermediate_size=30, num_hidden_layers=3, num_attention_heads=2,
                           image_size=30, patch_size=6),
        projection_dim=16)
    model = tf.CLIPModel(config).eval()
    with torch.no_grad():  # scrambled, so every parameter shows
        for name, p in model.named_parameters():
            if name != "logit_scale":
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name else 0.0))
    model.config._attn_implementation = "eager"
    model.save_pretrained(folder)
    save_tokenizer(word_tokenizer(["<|startoftext|>", "<|endoftext|>"], "<|startoftext|> $A <|endoftext|>",
                                  "<|startoftext|> $A <|endoftext|> $B:1 <|endoftext|>:1"), folder, SPECIAL)
    # CLIP's text model takes no token type ids, so transformers' pipeline must not be given any
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {**SPECIAL, "tokenizer_class": "PreTrainedTokenizerFast", "model_input_names": ["input_ids", "attention_mask"]}))
    tf.CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}).save_pretrained(folder)
    return model
