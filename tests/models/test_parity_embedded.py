"""Parity with transformers on the embedded real checkpoints (MiniLM, SRE-MiniLM, SmolLM2)."""
from __future__ import annotations

import pytest
import torch

from models import load_model
from models.embedded import EMBEDDED

pytestmark = pytest.mark.slow
ATOL = 1e-4
TEXTS = ["The animal didn't cross the street because it was too tired.", "A dog barked loudly."]


def _reference(folder, cls_name):
    import transformers as tf
    model = getattr(tf, cls_name).from_pretrained(folder, attn_implementation="eager")
    return model.eval()


def _assert_trace_matches(trace, theirs):
    real = trace.attention_mask.bool()
    for a, b in zip(trace.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=ATOL, rtol=0)
    for a, b in zip(trace.attentions, theirs.attentions, strict=True):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=ATOL, rtol=0)


@pytest.mark.parametrize("name", ["minilm", "sre-minilm"])
def test_minilm_matches_transformers(name):
    model = load_model(name)
    reference = _reference(EMBEDDED[name](), "BertModel")
    for texts in (TEXTS[0], TEXTS, [("Who barked?", "The dog did.")]):
        trace = model.run(texts)
        with torch.no_grad():
            theirs = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask,
                               token_type_ids=trace.token_type_ids, output_attentions=True, output_hidden_states=True)
        _assert_trace_matches(trace, theirs)
        torch.testing.assert_close(trace.pooled, theirs.pooler_output, atol=ATOL, rtol=0)


def test_minilm_tokenizer_matches_transformers():
    from transformers import AutoTokenizer
    model = load_model("minilm")
    reference = AutoTokenizer.from_pretrained(EMBEDDED["minilm"]())
    for text in TEXTS + ["COVID-19 isn't tokenized like 'hello'!"]:
        assert model.encode(text).input_ids[0].tolist() == reference(text)["input_ids"]
    pair = model.encode(("Who?", "It was me.")).token_type_ids[0].tolist()
    assert pair == reference("Who?", "It was me.")["token_type_ids"]


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


@pytest.fixture(scope="module")
def smollm2_reference():
    return _reference(EMBEDDED["smollm2"](), "LlamaForCausalLM")


def test_smollm2_matches_transformers(smollm2, smollm2_reference):
    assert smollm2.config.n_heads == 9 and smollm2.config.n_kv_heads == 3 and smollm2.n_layers == 30
    trace = smollm2.run(TEXTS)
    with torch.no_grad():
        theirs = smollm2_reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask,
                                   output_attentions=True, output_hidden_states=True)
    _assert_trace_matches(trace, theirs)
    real = trace.attention_mask.bool()
    torch.testing.assert_close(trace.logits[real], theirs.logits[real], atol=ATOL, rtol=0)


def test_smollm2_tokenizer_matches_transformers(smollm2):
    from transformers import AutoTokenizer
    reference = AutoTokenizer.from_pretrained(EMBEDDED["smollm2"]())
    for text in TEXTS + ["def f(x):\n    return x ** 2  # émigré"]:
        assert smollm2.encode(text).input_ids[0].tolist() == reference(text)["input_ids"]


def test_smollm2_greedy_generation_matches_transformers(smollm2, smollm2_reference):
    prompt = "The capital of France is"
    ours = smollm2.generate(prompt, max_new_tokens=20)
    ids = smollm2.encode(prompt).input_ids
    with torch.no_grad():
        theirs = smollm2_reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20,
                                            do_sample=False, pad_token_id=smollm2.config.eos_token_id)
    theirs_new = theirs[0, ids.shape[1]:].tolist()
    assert len(ours) >= 1
    assert ours == theirs_new[: len(ours)]
