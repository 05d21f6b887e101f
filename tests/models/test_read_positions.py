"""`forward(read_positions=[p])` computes the last layer at p only, and gives what the full forward gives there.

Attribution runs this on every one of its steps (only [CLS] or the scored token is read), so a
wrong mask, rotary slice or residual here would silently skew every attribution score.
"""
from __future__ import annotations

import pytest
import torch

from analysis.attribution.text_inputs import TextForward, encode_for_attribution
from models import load_model
from tests.tiny_models import make_checkpoint

TEXTS = ["the cat sat on the mat .", "a dog barked ."]  # padded batch


@pytest.mark.parametrize("kind", ["bert", "distilbert", "gpt2", "llama", "qwen2"])
@pytest.mark.parametrize("position", [0, 3])
def test_the_read_position_equals_the_full_forward_there(tmp_path, kind, position):
    make_checkpoint(kind, tmp_path)
    model = load_model(str(tmp_path))
    enc = model.encode(TEXTS)
    args = dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, capture=False)
    with torch.no_grad():
        full = model.forward(**args)
        read = model.forward(**args, read_positions=[position])
    assert read.final.shape[1] == 1
    torch.testing.assert_close(read.final, full.final[:, [position]], atol=1e-5, rtol=1e-4)
    for early, early_full in zip(read.resid[:-1], full.resid[:-1]):  # earlier layers are untouched
        torch.testing.assert_close(early, early_full, atol=0, rtol=0)
    if full.logits is not None and full.logits.dim() == 3:
        torch.testing.assert_close(read.logits, full.logits[:, [position]], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind, text", [("bert-cls", "the cat sat on the mat ."), ("bert-mlm", "the cat [MASK] on the mat ."),
                                        ("gpt2", "the cat sat on the")])
def test_attribution_scores_read_from_one_position_equal_the_full_forward(tmp_path, kind, text):
    make_checkpoint(kind, tmp_path)
    if kind == "bert-mlm":  # as in real BERT tokenizer files, "[MASK]" is one token
        from tokenizers import Tokenizer
        tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
        tok.add_special_tokens(["[MASK]"])
        tok.save(str(tmp_path / "tokenizer.json"))
    model = load_model(str(tmp_path))
    inputs = encode_for_attribution(model, text)
    fwd = TextForward(model, inputs)
    assert fwd.read_positions is not None  # pooled classifier, masked token or next token: one position is read
    embeds = fwd.embedding(inputs.input_ids).detach()
    with torch.no_grad():
        reduced = fwd.from_embeds(embeds, inputs.attention_mask, inputs.token_type_ids)
        full = fwd.read_full(model.forward(inputs_embeds=embeds, attention_mask=inputs.attention_mask,
                                           token_type_ids=inputs.token_type_ids, capture=False).logits)
    torch.testing.assert_close(reduced, full, atol=1e-5, rtol=1e-4)
