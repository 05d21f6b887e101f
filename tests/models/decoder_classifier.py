"""Sequence classification on a decoder family, against transformers' XForSequenceClassification (or, for a
family transformers gives no classifier, against its bare model's last hidden state times our `score`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models import load_model
from tests.models.decoder_parity import BATCH, VOCAB
from tests.tiny_models import save_tokenizer, word_tokenizer

SPECIAL = {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
           "unk_token": "[UNK]"}


def make_classifier_checkpoint(config_class: Any, model_class: Any, folder: Path, **config: Any):
    """A scrambled tiny transformers model of `model_class` with 3 labels, saved with a word-level tokenizer."""
    torch.manual_seed(1)
    cfg = config_class(**{"vocab_size": VOCAB, "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": 0,
                          "num_labels": 3, **config})
    cfg._attn_implementation = "eager"
    model = model_class(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name.lower() else 0.0))
    model.save_pretrained(folder)
    save_tokenizer(word_tokenizer(["<|endoftext|>"], None), folder, SPECIAL)
    return model


def check_sequence_classification(config_class: Any, model_class: Any, folder: Path, **config: Any) -> None:
    """Our logits on a right-padded batch equal transformers' (read at each row's last real token)."""
    reference = make_classifier_checkpoint(config_class, model_class, folder, **config)
    model = load_model(str(folder))
    assert model.task == "sequence-classification"
    trace = model.run(BATCH)
    assert trace.attention_mask[1].sum() < trace.attention_mask[0].sum()
    with torch.no_grad():
        theirs = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask).logits
    assert trace.logits.shape == (2, 3)
    torch.testing.assert_close(trace.logits, theirs, atol=1e-4, rtol=0)


def check_score_head_on_bare_model(config_class: Any, base_class: Any, folder: Path, architecture: str,
                                   **config: Any) -> None:
    """For a family transformers has no classifier for: a bare `base_class` checkpoint plus a `score` weight, named
    `architecture`, loads as a classifier whose logits are the reference's last hidden state at each row's last
    real token times `score` (transformers' decoder classifiers' arithmetic)."""
    import json

    from safetensors.torch import load_file, save_file

    reference = make_classifier_checkpoint(config_class, base_class, folder, **config)
    weights = load_file(str(folder / "model.safetensors"))
    score = torch.randn(3, reference.config.hidden_size, generator=torch.Generator().manual_seed(2))
    save_file({**weights, "score.weight": score}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    hf = json.loads((folder / "config.json").read_text())
    hf["architectures"] = [architecture]
    (folder / "config.json").write_text(json.dumps(hf))
    model = load_model(str(folder))
    assert model.task == "sequence-classification"
    trace = model.run(BATCH)
    with torch.no_grad():
        hidden = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask).last_hidden_state
    last = trace.attention_mask.sum(-1) - 1  # right padding
    theirs = hidden[torch.arange(2), last] @ score.T  # (2, 3)
    torch.testing.assert_close(trace.logits, theirs, atol=1e-4, rtol=0)
    saved = model.save_pretrained(folder.parent / f"{folder.name}-saved")
    assert torch.equal(load_model(str(saved)).run(BATCH).logits, trace.logits)
