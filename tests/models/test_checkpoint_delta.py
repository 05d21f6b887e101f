"""Checkpoint deltas: only changed tensors are stored, and base + delta gives back the trained model."""
from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

from models import load_model
from models.checkpoint_delta import compose, delta_digest, save_delta
from tests.tiny_models import make_checkpoint

TEXTS = ["the cat sat on the mat .", "a dog barked ."]


def trained_copy(base_folder):
    """A classifier whose head, pooler and last block differ from the base, as after the sentiment recipe."""
    model = load_model(str(base_folder)).with_head("sequence-classification", labels=["negative", "positive"])
    with torch.no_grad():
        for name, p in model.network.named_parameters():
            if name.startswith(("head.", "pooler.", "blocks.1.")):
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.05)
    return model


def test_delta_holds_only_what_changed_and_composes_back_exactly(tmp_path):
    base = tmp_path / "base"
    make_checkpoint("bert", base)
    model = trained_copy(base)
    delta = save_delta(model, str(base), tmp_path / "delta", card={"note": "test"}, dtype=torch.float32)
    stored = load_file(str(delta / "delta.safetensors"))
    assert all(n.startswith(("classifier.", "bert.pooler.", "bert.encoder.layer.1.")) for n in stored)
    assert any(n.startswith("bert.encoder.layer.1.") for n in stored) and "classifier.weight" in stored
    assert not (delta / "tokenizer.json").exists()  # the vocabulary did not change
    meta = json.loads((delta / "base.json").read_text())
    assert meta["body_prefix"] == "bert." and meta["card"] == {"note": "test"}
    rebuilt = load_model(str(compose(delta, tmp_path / "composed")))
    assert rebuilt.task == "sequence-classification" and rebuilt.labels == model.labels
    assert torch.equal(rebuilt.run(TEXTS).logits, model.run(TEXTS).logits)


def test_float16_delta_is_close_and_a_grown_vocabulary_travels(tmp_path):
    base = tmp_path / "base"
    make_checkpoint("bert", base)
    model = trained_copy(base).add_tokens(["cat.dog"])
    delta = save_delta(model, str(base), tmp_path / "delta")
    assert (delta / "tokenizer.json").exists()
    rebuilt = load_model(str(compose(delta, tmp_path / "composed")))
    assert rebuilt.tokenizer.token_to_id("cat.dog") == model.tokenizer.token_to_id("cat.dog")
    torch.testing.assert_close(rebuilt.run(TEXTS).logits, model.run(TEXTS).logits, atol=1e-3, rtol=0)


def test_digest_follows_the_content(tmp_path):
    base = tmp_path / "base"
    make_checkpoint("bert", base)
    model = trained_copy(base)
    first = delta_digest(save_delta(model, str(base), tmp_path / "a"))
    assert delta_digest(save_delta(model, str(base), tmp_path / "b")) == first
    with torch.no_grad():
        model.network.head.classifier.bias.add_(1.0)
    assert delta_digest(save_delta(model, str(base), tmp_path / "c")) != first
