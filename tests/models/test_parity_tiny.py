"""Parity with transformers (eager attention) on tiny random checkpoints of every family."""
from __future__ import annotations

import pytest
import torch

from models import load_model
from tests.tiny_models import make_checkpoint

KINDS = ["bert", "bert-mlm", "bert-cls", "roberta", "distilbert", "gpt2", "llama", "qwen2", "mistral"]
ATOL = 1e-4


@pytest.fixture(scope="module", params=KINDS)
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    reference = make_checkpoint(request.param, folder)
    return request.param, reference, load_model(str(folder))


def _reference(reference, input_ids, attention_mask, token_type_ids=None):
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True, output_hidden_states=True)
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    with torch.no_grad():
        return reference(**kwargs)


def _compare(kind, ours, theirs, mask):
    real = mask.bool()
    assert len(ours.hidden_states) == len(theirs.hidden_states)
    for a, b in zip(ours.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=ATOL, rtol=0)
    assert len(ours.attentions) == len(theirs.attentions)
    for a, b in zip(ours.attentions, theirs.attentions):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=ATOL, rtol=0)
    if hasattr(theirs, "logits"):
        assert ours.logits is not None
        if theirs.logits.dim() == 3:
            torch.testing.assert_close(ours.logits[real], theirs.logits[real], atol=ATOL, rtol=0)
        else:
            torch.testing.assert_close(ours.logits, theirs.logits, atol=ATOL, rtol=0)


def test_single_text_matches_transformers(pair):
    kind, reference, model = pair
    trace = model.run("the cat sat on the mat .")
    theirs = _reference(reference, trace.input_ids, trace.attention_mask, trace.token_type_ids if kind.startswith("bert") else None)
    _compare(kind, trace, theirs, trace.attention_mask)


def test_padded_batch_matches_transformers(pair):
    kind, reference, model = pair
    trace = model.run(["a dog barked loudly and then ran away quickly .", "the cat sat ."])
    assert trace.attention_mask[1].sum() < trace.attention_mask[0].sum()
    theirs = _reference(reference, trace.input_ids, trace.attention_mask, trace.token_type_ids if kind.startswith("bert") else None)
    _compare(kind, trace, theirs, trace.attention_mask)


def test_padded_batch_equals_each_example_alone(pair):
    _, _, model = pair
    texts = ["a dog barked loudly and then ran away quickly .", "the cat sat ."]
    batch = model.run(texts)
    for i, text in enumerate(texts):
        alone = model.run(text)
        n = alone.input_ids.shape[1]
        for a, b in zip(batch.hidden_states, alone.hidden_states):
            torch.testing.assert_close(a[i, :n], b[0], atol=1e-5, rtol=0)
        for a, b in zip(batch.attentions, alone.attentions):
            torch.testing.assert_close(a[i, :, :n, :n], b[0], atol=1e-5, rtol=0)


def test_sentence_pairs_match_transformers(pair):
    kind, reference, model = pair
    if kind not in ("bert", "bert-mlm", "bert-cls", "roberta"):
        pytest.skip("sentence pairs are an encoder feature")
    trace = model.run([("who was it ?", "it was me ."), ("the cat sat ?", "a dog .")])
    if kind.startswith("bert"):
        assert trace.token_type_ids[0].max() == 1  # the second segment is marked
    theirs = _reference(reference, trace.input_ids, trace.attention_mask, trace.token_type_ids if kind.startswith("bert") else None)
    _compare(kind, trace, theirs, trace.attention_mask)


def test_attention_rows_sum_to_one(pair):
    _, _, model = pair
    trace = model.run(["the cat sat on the mat .", "who was it ?"])
    for pattern in trace.attentions:
        sums = pattern.sum(-1)  # (B, H, T)
        real = trace.attention_mask.bool()[:, None, :].expand_as(sums)
        torch.testing.assert_close(sums[real], torch.ones_like(sums[real]), atol=1e-5, rtol=0)


def test_fast_path_equals_capture_path(pair):
    _, _, model = pair
    ids = model.run(["the cat sat on the mat .", "who ?"])
    captured = model.forward(input_ids=ids.input_ids, attention_mask=ids.attention_mask, capture=True)
    fast = model.forward(input_ids=ids.input_ids, attention_mask=ids.attention_mask, capture=False)
    real = ids.attention_mask.bool()
    torch.testing.assert_close(captured.final[real], fast.final[real], atol=1e-5, rtol=0)
    assert fast.attentions == []


def test_save_and_reload_gives_identical_outputs(pair, tmp_path):
    kind, _, model = pair
    model.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    a, b = model.run("the cat sat ."), again.run("the cat sat .")
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)
    if a.logits is not None:
        assert torch.equal(a.logits, b.logits)


def test_saved_folder_loads_in_transformers_with_same_outputs(pair, tmp_path):
    import transformers as tf
    kind, _, model = pair
    model.save_pretrained(tmp_path)
    auto = {"bert-mlm": tf.AutoModelForMaskedLM, "bert-cls": tf.AutoModelForSequenceClassification,
            "gpt2": tf.AutoModelForCausalLM, "llama": tf.AutoModelForCausalLM, "qwen2": tf.AutoModelForCausalLM,
            "mistral": tf.AutoModelForCausalLM}.get(kind, tf.AutoModel)
    reloaded, info = auto.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    reloaded.eval()
    trace = model.run("the cat sat on the mat .")
    theirs = _reference(reloaded, trace.input_ids, trace.attention_mask, trace.token_type_ids if kind.startswith("bert") else None)
    _compare(kind, trace, theirs, trace.attention_mask)
