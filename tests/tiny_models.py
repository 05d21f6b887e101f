"""Tiny random checkpoints made by transformers inside the tests (no download), with a word-level tokenizer.

transformers' own tests use a tiny configuration by default (2 layers, 4 heads, hidden 32);
these follow that, so parity is checked on every family in well under a second each.
"""
from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

WORDS = ("the cat sat on mat a dog barked loudly who was it me . ? , and then ran away quickly "
         "i love this film hate that movie good bad very not at all").split()


def word_tokenizer(special: list[str], template: str | None, pair_template: str | None = None) -> Tokenizer:
    vocab = {tok: i for i, tok in enumerate(special + ["[UNK]"] + WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    if template:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=template, pair=pair_template or template,
            special_tokens=[(t, vocab[t]) for t in special if t in template + (pair_template or "")])
    return tokenizer


def save_tokenizer(tokenizer: Tokenizer, folder: Path, special_map: dict[str, str]) -> None:
    import json
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "special_tokens_map.json").write_text(json.dumps(special_map))
    (folder / "tokenizer_config.json").write_text(json.dumps({**special_map, "tokenizer_class": "PreTrainedTokenizerFast"}))


def make_checkpoint(kind: str, folder: Path, seed: int = 0, **overrides):
    """Save a tiny random transformers model of `kind` to `folder`; return the transformers model (eager, eval)."""
    import transformers as tf
    torch.manual_seed(seed)
    vocab_size = 64
    common = dict(attn_implementation="eager")
    if kind in ("bert", "bert-mlm", "bert-cls", "roberta", "distilbert"):
        special = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"] if kind != "roberta" else ["<s>", "<pad>", "</s>", "<mask>"]
        cls_tok, sep_tok = ("[CLS]", "[SEP]") if kind != "roberta" else ("<s>", "</s>")
        tok = word_tokenizer(special, f"{cls_tok} $A {sep_tok}", f"{cls_tok} $A {sep_tok} $B:1 {sep_tok}:1")
        special_map = ({"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]", "unk_token": "[UNK]"}
                       if kind != "roberta" else
                       {"pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>", "unk_token": "[UNK]", "bos_token": "<s>", "eos_token": "</s>"})
        if kind == "distilbert":
            config = tf.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=37,
                                         max_position_embeddings=64, pad_token_id=0, **overrides)
            model = tf.DistilBertModel(config)
        elif kind == "roberta":
            config = tf.RobertaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37, max_position_embeddings=66, pad_token_id=1,
                                      type_vocab_size=1, **overrides)
            model = tf.RobertaModel(config)
        else:
            config = tf.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=37, max_position_embeddings=64, pad_token_id=0, **overrides)
            cls = {"bert": tf.BertModel, "bert-mlm": tf.BertForMaskedLM, "bert-cls": tf.BertForSequenceClassification}[kind]
            model = cls(config)
    else:
        special = ["<|endoftext|>"]
        tok = word_tokenizer(special, None)
        special_map = {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "[UNK]"}
        if kind == "gpt2":
            config = tf.GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                   bos_token_id=0, eos_token_id=0, **overrides)
            model = tf.GPT2LMHeadModel(config)
        else:
            cfg_cls, model_cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
                                  "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
                                  "mistral": (tf.MistralConfig, tf.MistralForCausalLM)}[kind]
            params = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, intermediate_size=37, max_position_embeddings=64,
                          bos_token_id=0, eos_token_id=0, pad_token_id=0, tie_word_embeddings=False, rope_theta=10000.0)
            params.update(overrides)
            config = cfg_cls(**params)
            model = model_cls(config)
    model.config._attn_implementation = "eager"
    model.eval()
    with torch.no_grad():  # random, not zero, biases and norms so parity tests see every parameter
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    save_tokenizer(tok, folder, special_map)
    return model
