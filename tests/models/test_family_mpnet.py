"""MPNet against transformers (eager) on tiny scrambled checkpoints.

Checked: hidden states, attentions and logits of every head on one text, a padded batch and sentence pairs
(also with a bias table larger than the 32 buckets transformers reads); the relative position bias equals
transformers' MPNetEncoder.compute_position_bias, sits in the trace and at `hook_position_bias`, and its buckets
equal transformers' at every distance up to and past max_distance; masking equals transformers' head_mask;
pruned equals masked (transformers 4.x cannot run a pruned MPNet: its shared bias keeps every head); save and
reload, and transformers loads what we save with equal logits.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES
from models.relative_position import relative_position_bucket
from tests.models.config_keys import assert_refused
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
TEXT = "the cat sat on the mat ."
BATCH = ["a dog barked loudly and then ran away quickly .", "the cat sat ."]
PAIRS = [("who was it ?", "it was me ."), ("the cat sat ?", "a dog .")]
CLASSES = {None: tf.MPNetModel, "masked-lm": tf.MPNetForMaskedLM,
           "sequence-classification": tf.MPNetForSequenceClassification,
           "token-classification": tf.MPNetForTokenClassification,
           "question-answering": tf.MPNetForQuestionAnswering}


def make_mpnet(folder: Path, task: str | None = "masked-lm", seed: int = 0, **config) -> tf.PreTrainedModel:
    """A tiny scrambled MPNet saved to `folder` with a word-level tokenizer (<pad> = 1, as MPNet's vocabulary has
    it); returns it (eager, eval)."""
    torch.manual_seed(seed)
    params = dict(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=66, num_labels=2 if task == "question-answering" else 3)
    params.update(config)
    cfg = tf.MPNetConfig(**params)
    cfg._attn_implementation = "eager"
    model = CLASSES[task](cfg).eval()
    with torch.no_grad():  # scrambled: every weight, norm, bias and bias-table entry random
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name.lower() else 0.0))
    model.save_pretrained(folder)
    special = ["<s>", "<pad>", "</s>", "<mask>"]
    save_tokenizer(word_tokenizer(special, "<s> $A </s>", "<s> $A </s> </s> $B </s>"), folder,
                   {"pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>",
                    "unk_token": "[UNK]", "bos_token": "<s>", "eos_token": "</s>"})
    return model


def reference(model, trace, **kwargs):
    with torch.no_grad():
        return model(input_ids=trace.input_ids, attention_mask=trace.attention_mask, output_attentions=True,
                     output_hidden_states=True, **kwargs)


def their_logits(out) -> torch.Tensor | None:
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits], dim=-1)  # ours: (B, T, 2)
    return getattr(out, "logits", None)


def assert_same(trace, theirs, atol: float = ATOL) -> None:
    real = trace.attention_mask.bool()
    assert len(trace.hidden_states) == len(theirs.hidden_states)
    for a, b in zip(trace.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)
    assert len(trace.attentions) == len(theirs.attentions)
    for a, b in zip(trace.attentions, theirs.attentions):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=atol, rtol=0)
    logits = their_logits(theirs)
    if logits is None:
        return
    if logits.dim() == 3:
        torch.testing.assert_close(trace.logits[real], logits[real], atol=atol, rtol=0)
    else:
        torch.testing.assert_close(trace.logits, logits, atol=atol, rtol=0)


def body_of(model) -> tf.MPNetModel:
    return model if isinstance(model, tf.MPNetModel) else model.mpnet


@pytest.fixture(scope="module", params=list(CLASSES))
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"mpnet_{request.param}")
    theirs = make_mpnet(folder, request.param)
    return request.param, theirs, load_model(str(folder))


def test_every_head_matches_transformers_on_a_text_a_padded_batch_and_pairs(pair):
    task, theirs, model = pair
    assert model.task == task and model.family == "mpnet"
    batch = model.run(BATCH)
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    assert (batch.input_ids[1][~batch.attention_mask[1].bool()] == 1).all()  # padded with <pad> = 1
    for trace in (model.run(TEXT), batch, model.run(PAIRS)):
        assert_same(trace, reference(theirs, trace))


def test_saved_folder_loads_here_and_in_transformers_with_equal_outputs(pair, tmp_path):
    task, theirs, model = pair
    model.save_pretrained(tmp_path)
    a, b = model.run(BATCH), load_model(str(tmp_path)).run(BATCH)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)
    reloaded, info = type(theirs).from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert_same(a, reference(reloaded.eval(), a))


def test_position_bias_equals_transformers_and_is_in_the_trace(pair):
    _, theirs, model = pair
    seen = []
    with model.hooks({"hook_position_bias": lambda x, name: seen.append(x)}):
        trace = model.run(BATCH)
    bias = trace.extras["position_bias"]  # (1, H, T, T): one table for every example and layer
    T = trace.input_ids.shape[1]
    assert bias.shape == (1, model.n_heads, T, T) and len(seen) == 1 and torch.equal(seen[0], bias)
    with torch.no_grad():
        expected = body_of(theirs).encoder.compute_position_bias(torch.zeros(2, T, 32))  # (B, H, T, T)
    torch.testing.assert_close(bias.expand_as(expected), expected, atol=0, rtol=0)


def test_buckets_equal_transformers_at_every_distance():
    distance = torch.arange(-400, 401)[None, :]  # past max_distance 128 on both sides
    ours = relative_position_bucket(distance, bidirectional=True, num_buckets=32, max_distance=128)
    theirs = tf.models.mpnet.modeling_mpnet.MPNetEncoder.relative_position_bucket(distance)
    assert torch.equal(ours, theirs)
    assert ours.max() == 31 and ours.min() == 0


def test_a_bias_table_larger_than_the_buckets_read_matches_transformers(tmp_path):
    theirs = make_mpnet(tmp_path, "masked-lm", relative_attention_num_buckets=40, num_hidden_layers=2)
    model = load_model(str(tmp_path))
    trace = model.run(BATCH)
    assert_same(trace, reference(theirs, trace))


def test_masking_equals_transformers_head_mask_and_pruning_equals_masking(tmp_path):
    theirs = make_mpnet(tmp_path / "source", "sequence-classification")
    model = load_model(str(tmp_path / "source"))
    spec = {0: [1], 2: [0, 3]}
    with model.mask_heads(spec):
        masked = model.run(BATCH)
    head_mask = torch.ones(3, 4)
    for layer, heads in spec.items():
        head_mask[layer, heads] = 0.0
    assert_same(masked, reference(theirs, masked, head_mask=head_mask))

    pruned = model.prune_heads(spec)
    assert pruned.head_ids() == [[0, 2, 3], [0, 1, 2, 3], [1, 2]]
    again = pruned.run(BATCH)
    real = masked.attention_mask.bool()
    for a, b in zip(again.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(again.logits, masked.logits, atol=1e-5, rtol=0)
    assert torch.equal(again.extras["position_bias"], masked.extras["position_bias"])  # every original head's rows

    pruned.save_pretrained(tmp_path / "pruned")
    reloaded = load_model(str(tmp_path / "pruned"))
    assert reloaded.head_ids() == pruned.head_ids()
    for a, b in zip(reloaded.run(BATCH).hidden_states, again.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_refusals_name_what_they_refuse():
    hf = tf.MPNetConfig().to_dict()
    for key, value in (("hidden_act", "mish"), ("relative_attention_num_buckets", 16)):
        assert_refused(FAMILIES["mpnet"].config_from_hf, {**hf, key: value}, key)


def test_fast_and_deferred_paths_equal_the_captured_one(tmp_path):
    make_mpnet(tmp_path, "masked-lm", num_hidden_layers=2)
    model = load_model(str(tmp_path))
    captured = model.run(BATCH)
    real = captured.attention_mask.bool()
    for capture in (False, "deferred"):
        other = model.run(BATCH, capture=capture)
        torch.testing.assert_close(other.logits[real], captured.logits[real], atol=1e-5, rtol=0)
        if capture:
            for a, b in zip(other.attentions, captured.attentions):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
