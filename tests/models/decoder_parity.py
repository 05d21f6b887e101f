"""The parity checks every native decoder-only family must pass against transformers (eager attention).

A family's test makes tiny random checkpoints with `make_decoder_checkpoint(config_class, model_class, folder,
**config)` (scrambled weights: every parameter, norms and biases included, is random) and calls
`check_decoder_family(reference, folder)`. It checks, within ATOL:
  - hidden states, attentions and logits on one text and on a right-padded batch;
  - 20 greedy tokens equal to transformers' `generate` (key/value cache on both sides);
  - a pruned model equals the masked one, and a grouped key/value head goes only with its whole group;
  - save_pretrained -> load_model gives identical outputs, and transformers loads the saved folder.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models import load_model
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
TEXT = "the cat sat on the mat . a dog barked"
BATCH = ["a dog barked loudly and then ran away quickly .", "the cat sat ."]
VOCAB = 64


def make_decoder_checkpoint(config_class: Any, model_class: Any, folder: Path, seed: int = 0, **config: Any):
    """A tiny random transformers decoder saved to `folder` with a word-level tokenizer; returns it (eager, eval)."""
    torch.manual_seed(seed)
    params = dict(vocab_size=VOCAB, bos_token_id=0, eos_token_id=0, pad_token_id=0)
    params.update(config)
    cfg = config_class(**params)
    cfg._attn_implementation = "eager"
    model = model_class(cfg).eval()
    with torch.no_grad():  # scrambled: norms, biases and every matrix random, so parity sees each parameter
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name.lower() else 0.0))
    model.save_pretrained(folder)
    special = ["<|endoftext|>"]
    save_tokenizer(word_tokenizer(special, None), folder,
                   {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                    "unk_token": "[UNK]"})
    return model


def reference_outputs(reference, input_ids, attention_mask):
    with torch.no_grad():
        return reference(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True,
                         output_hidden_states=True)


def assert_same_trace(ours, theirs, mask, atol: float = ATOL) -> None:
    real = mask.bool()
    assert len(ours.hidden_states) == len(theirs.hidden_states)
    for a, b in zip(ours.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)
    assert len(ours.attentions) == len(theirs.attentions)
    for a, b in zip(ours.attentions, theirs.attentions):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=atol, rtol=0)
    torch.testing.assert_close(ours.logits[real], theirs.logits[real], atol=atol, rtol=0)


def check_decoder_family(reference, folder: Path, tmp_path: Path, prune: dict | None = None,
                         atol: float = ATOL) -> None:
    """Every check in this module's docstring on the checkpoint in `folder` (made from `reference`)."""
    model = load_model(str(folder))
    assert model.task == "causal-lm" and model.can_generate

    single = model.run(TEXT)
    assert_same_trace(single, reference_outputs(reference, single.input_ids, single.attention_mask),
                      single.attention_mask, atol)
    batch = model.run(BATCH)
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    assert_same_trace(batch, reference_outputs(reference, batch.input_ids, batch.attention_mask),
                      batch.attention_mask, atol)

    ids = model.encode(TEXT).input_ids
    with torch.no_grad():
        theirs = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                                    eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:].tolist()
    model.config.eos_token_id = None  # both sides run all 20 steps
    try:
        assert model.generate(TEXT, max_new_tokens=20) == theirs
    finally:
        model.config.eos_token_id = reference.config.eos_token_id

    spec = prune or {0: [0, 1], model.n_layers - 1: [model.n_heads - 1]}
    with model.mask_heads(spec):
        masked = model.run(BATCH)
    pruned = model.prune_heads(spec).run(BATCH)
    real = masked.attention_mask.bool()
    for a, b in zip(pruned.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=1e-5)  # float rounding of other shapes

    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    again = load_model(str(saved)).run(BATCH)
    for a, b in zip(again.hidden_states, batch.hidden_states):
        assert torch.equal(a, b)
    reloaded = type(reference).from_pretrained(saved, attn_implementation="eager").eval()
    assert_same_trace(batch, reference_outputs(reloaded, batch.input_ids, batch.attention_mask),
                      batch.attention_mask, atol)
