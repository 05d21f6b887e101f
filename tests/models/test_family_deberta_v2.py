"""DeBERTa-v2 (models/families/deberta_v2.py) against transformers' eager DebertaV2 on tiny scrambled checkpoints.

Every parameter is random (norms and biases too), the relative table is small (buckets and clipping are exercised
by 18-token texts), and the configs switch share_att_key, pos_att_type, position_biased_input, embedding_size and
relative_attention. Checked within 1e-4, at every position (padding too: transformers masks a padding query's row,
and so do we): hidden states, attentions and logits of every head on one text, a padded batch and sentence pairs;
each score term against one recomputed here from transformers' module weights, and their sum against
transformers' scores; masking a head against transformers with that head's output columns zeroed; pruned = masked;
read positions; deferred patterns; save_pretrained loaded back by us and by transformers; refusals by name.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES
from tests.models.config_keys import assert_refused
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
TEXT = "the cat sat on the mat . a dog barked loudly and then ran away quickly ."
BATCH = [TEXT, "the cat sat ."]
PAIRS = [("who was it ?", "it was me and the dog ."), ("the cat ?", "a dog barked loudly and then ran away .")]
BASE = dict(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, pad_token_id=0, type_vocab_size=2, relative_attention=True,
            position_buckets=6, max_relative_positions=20, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm")
CONFIGS = {
    "separate-keys": {},
    "shared-key-c2p-narrow-embeddings": dict(share_att_key=True, pos_att_type=["c2p"], embedding_size=24,
                                             position_biased_input=False),
    "p2c-clipped-no-buckets": dict(pos_att_type="p2c", position_buckets=-1, max_relative_positions=5,
                                   norm_rel_ebd="none", type_vocab_size=0),
    "no-relative-attention": dict(relative_attention=False, pos_att_type=["c2p"]),
}
CLASSES = {"masked-lm": tf.DebertaV2ForMaskedLM, "sequence-classification": tf.DebertaV2ForSequenceClassification,
           "token-classification": tf.DebertaV2ForTokenClassification,
           "question-answering": tf.DebertaV2ForQuestionAnswering}


def make_checkpoint(folder: Path, task: str = "masked-lm", seed: int = 0, **overrides):
    """A tiny scrambled transformers DeBERTa-v2 with a word-level tokenizer, saved to `folder`; returned eval."""
    torch.manual_seed(seed)
    config = tf.DebertaV2Config(**{**BASE, **overrides}, num_labels=2 if task == "question-answering" else 3)
    config._attn_implementation = "eager"
    model = CLASSES[task](config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5)
                    + (1.0 if "LayerNorm" in name and name.endswith("weight") else 0.0))
    model.save_pretrained(folder)
    special = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    save_tokenizer(word_tokenizer(special, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"), folder,
                   {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
                    "unk_token": "[UNK]"})
    return model


def reference_logits(out) -> torch.Tensor:
    return torch.stack([out.start_logits, out.end_logits], -1) if hasattr(out, "start_logits") else out.logits


def assert_matches(trace, reference) -> None:
    types = trace.token_type_ids if reference.config.type_vocab_size > 0 else None
    with torch.no_grad():
        theirs = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask, token_type_ids=types,
                           output_attentions=True, output_hidden_states=True)
    assert len(trace.hidden_states) == len(theirs.hidden_states)
    for ours, ref in zip(trace.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    for ours, ref in zip(trace.attentions, theirs.attentions):
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.logits, reference_logits(theirs), atol=ATOL, rtol=0)


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def masked_lm(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    reference = make_checkpoint(folder, **CONFIGS[request.param])
    return load_model(str(folder)), reference, folder


def test_masked_lm_parity_on_a_text_a_padded_batch_and_pairs(masked_lm):
    model, reference, _ = masked_lm
    assert model.family == "deberta-v2" and model.task == "masked-lm"
    single = model.run(TEXT)
    assert single.input_ids.shape[1] >= 12  # longer than the exact-bucket window
    assert_matches(single, reference)
    batch = model.run(BATCH)
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    assert_matches(batch, reference)
    pairs = model.run(PAIRS)
    assert pairs.token_type_ids is not None and pairs.token_type_ids.any()
    assert_matches(pairs, reference)


@pytest.mark.parametrize("task", ["sequence-classification", "token-classification", "question-answering"])
@pytest.mark.parametrize("config", ["separate-keys", "shared-key-c2p-narrow-embeddings"])
def test_task_heads_match_transformers(task, config, tmp_path):
    reference = make_checkpoint(tmp_path, task, **CONFIGS[config])
    model = load_model(str(tmp_path))
    assert model.task == task
    for given in (TEXT, BATCH, PAIRS):
        assert_matches(model.run(given), reference)


def _recomputed_terms(reference, hidden: torch.Tensor, layer: int) -> dict[str, torch.Tensor]:
    """content, c2p and p2c of one layer from transformers' own weights, written out index by index."""
    cfg = reference.config
    attn = reference.deberta.encoder.layer[layer].attention.self
    B, T, _ = hidden.shape
    H, dh = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    heads = lambda t: t.view(t.shape[0], -1, H, dh).transpose(1, 2)  # noqa: E731  (N, H, L, dh)
    kinds = cfg.pos_att_type
    scale = math.sqrt(dh * (1 + len([k for k in kinds if k in ("c2p", "p2c")])))
    q, k = heads(attn.query_proj(hidden)), heads(attn.key_proj(hidden))
    terms = {"content": q @ k.transpose(-1, -2) / scale}
    table = reference.deberta.encoder.get_rel_embedding()[None]  # (1, 2 span, d)
    span = table.shape[1] // 2
    rel = reference.deberta.encoder.get_rel_pos(hidden)[0]  # (T, T) bucketed query - key
    row = torch.clamp(rel + span, 0, 2 * span - 1)
    share = getattr(cfg, "share_att_key", False)
    if "c2p" in kinds:
        pos_k = heads(attn.key_proj(table) if share else attn.pos_key_proj(table))[0]  # (H, 2 span, dh)
        terms["c2p"] = torch.einsum("bhid,hijd->bhij", q, pos_k[:, row]) / scale
    if "p2c" in kinds:
        pos_q = heads(attn.query_proj(table) if share else attn.pos_query_proj(table))[0]
        terms["p2c"] = torch.einsum("bhjd,hijd->bhij", k, pos_q[:, row]) / scale
    return terms


@pytest.mark.parametrize("config", ["separate-keys", "shared-key-c2p-narrow-embeddings", "p2c-clipped-no-buckets"])
def test_each_score_term_is_transformers_arithmetic_and_they_sum_to_the_scores(config, tmp_path):
    reference = make_checkpoint(tmp_path, **CONFIGS[config])
    model = load_model(str(tmp_path))
    seen = {}
    with model.hooks({f"blocks.{i}.attn.hook_attn_scores": (lambda x, name: seen.__setitem__(name, x))
                      for i in range(model.n_layers)}):
        trace = model.run(BATCH)
    mask = trace.attention_mask.bool()
    visible = (mask[:, None, :, None] & mask[:, None, None, :])  # (B, 1, T, T) real query and key
    for layer, terms in enumerate(trace.extras["score_terms"]):
        with torch.no_grad():
            expected = _recomputed_terms(reference, trace.hidden_states[layer], layer)
            attn = reference.deberta.encoder.layer[layer].attention.self
            q = attn.transpose_for_scores(attn.query_proj(trace.hidden_states[layer]), attn.num_attention_heads)
            k = attn.transpose_for_scores(attn.key_proj(trace.hidden_states[layer]), attn.num_attention_heads)
            table = reference.deberta.encoder.get_rel_embedding()
            rel = reference.deberta.encoder.get_rel_pos(trace.hidden_states[layer])
            factor = 1 + len([t for t in reference.config.pos_att_type if t in ("c2p", "p2c")])
            bias = attn.disentangled_attention_bias(q, k, rel, table, factor).view_as(expected["content"])
        for name in ("content", "c2p", "p2c"):
            ours = getattr(terms, name)
            if name in expected:
                torch.testing.assert_close(ours, expected[name], atol=ATOL, rtol=0)
            else:
                assert ours is None
        total = sum(getattr(terms, t) for t in ("content", "c2p", "p2c") if getattr(terms, t) is not None)
        torch.testing.assert_close(total - terms.content, bias, atol=ATOL, rtol=0)  # transformers' c2p + p2c
        scores = seen[f"blocks.{layer}.attn.hook_attn_scores"]
        torch.testing.assert_close(scores * visible, total * visible, atol=1e-6, rtol=0)  # + 0 where visible
        torch.testing.assert_close(torch.softmax(scores, -1), trace.attentions[layer], atol=1e-6, rtol=0)


def test_zeroing_a_term_at_its_hook_point_removes_it_from_the_pattern(masked_lm):
    model, _, _ = masked_lm
    if model.config.hf_config.get("relative_attention") is False:
        pytest.skip("no relative terms without relative_attention")
    plain = model.run(TEXT)
    hooks = {f"blocks.{i}.attn.hook_{t}_scores": (lambda x, name: torch.zeros_like(x))
             for i in range(model.n_layers) for t in ("c2p", "p2c")
             if f"blocks.{i}.attn.hook_{t}_scores" in model.hook_points
             and getattr(plain.extras["score_terms"][i], t) is not None}
    with model.hooks(hooks):
        zeroed = model.run(TEXT)
    layer0 = zeroed.extras["score_terms"][0]
    for t in ("c2p", "p2c"):
        if getattr(layer0, t) is not None:
            assert not getattr(layer0, t).any()
    torch.testing.assert_close(zeroed.attentions[0], torch.softmax(plain.extras["score_terms"][0].content, -1),
                               atol=1e-6, rtol=0)


def test_masking_a_head_is_transformers_with_that_heads_output_zeroed(masked_lm):
    model, reference, folder = masked_lm
    spec = {0: [1], 1: [0, 3]}
    with model.mask_heads(spec):
        masked = model.run(BATCH)
    zeroed = type(reference).from_pretrained(folder, attn_implementation="eager").eval()
    d_head = model.config.d_head
    with torch.no_grad():
        for layer, heads in spec.items():
            dense = zeroed.deberta.encoder.layer[layer].attention.output.dense
            for h in heads:
                dense.weight[:, h * d_head:(h + 1) * d_head] = 0
        theirs = zeroed(input_ids=masked.input_ids, attention_mask=masked.attention_mask, output_hidden_states=True)
    for ours, ref in zip(masked.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(ours, ref, atol=ATOL, rtol=0)
    torch.testing.assert_close(masked.logits, theirs.logits, atol=ATOL, rtol=0)
    assert not masked.attentions[0][:, 1].any()  # a masked head's pattern is reported scaled, as transformers 4.x


def test_pruned_equals_masked_and_reloads(masked_lm, tmp_path):
    model, _, _ = masked_lm
    spec = {0: [0, 2], 1: [3]}
    with model.mask_heads(spec):
        masked = model.run(PAIRS)
    pruned = model.prune_heads(spec)
    assert pruned.head_ids() == [[1, 3], [0, 1, 2]]
    again = pruned.run(PAIRS)
    for a, b in zip(again.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(again.logits, masked.logits, atol=1e-5, rtol=1e-5)
    pruned.save_pretrained(tmp_path / "pruned")
    reloaded = load_model(str(tmp_path / "pruned")).run(PAIRS)
    for a, b in zip(reloaded.hidden_states, again.hidden_states):
        assert torch.equal(a, b)


def test_save_pretrained_round_trip_and_transformers_loads_it(masked_lm, tmp_path):
    model, _, _ = masked_lm
    batch = model.run(PAIRS)
    model.save_pretrained(tmp_path / "saved")
    again = load_model(str(tmp_path / "saved")).run(PAIRS)
    for a, b in zip(again.hidden_states, batch.hidden_states):
        assert torch.equal(a, b)
    assert torch.equal(again.logits, batch.logits)
    theirs = tf.DebertaV2ForMaskedLM.from_pretrained(tmp_path / "saved", attn_implementation="eager").eval()
    assert_matches(batch, theirs)


def test_read_positions_and_deferred_patterns_give_the_same_numbers(tmp_path):
    reference = make_checkpoint(tmp_path, "sequence-classification")
    model = load_model(str(tmp_path))
    prepared = model.prepare(BATCH)
    full = model.forward(**prepared.inputs, capture=False)
    first = model.forward(**prepared.inputs, capture=False, read_positions=[0])
    torch.testing.assert_close(first.logits, full.logits, atol=1e-5, rtol=0)
    middle = model.forward(**prepared.inputs, capture=False, read_positions=[2, 5])
    torch.testing.assert_close(middle.final, full.final[:, [2, 5]], atol=1e-5, rtol=0)
    captured = model.run(BATCH)
    deferred = model.run(BATCH, capture="deferred")
    assert deferred.attentions_pending
    assert torch.equal(deferred.attentions[0], captured.attentions[0])  # same arithmetic on the same tensors
    for a, b in zip(deferred.attentions[1:], captured.attentions[1:]):  # their inputs went through fused attention
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for a, b in zip(full.resid, captured.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert_matches(captured, reference)


@pytest.mark.parametrize("key, value", [("conv_kernel_size", 3), ("legacy", False), ("hidden_act", "mish"),
                                        ("pooler_hidden_act", "mish"), ("pooler_hidden_size", 16)])
def test_unsupported_values_are_refused_by_name(key, value):
    hf = {**tf.DebertaV2Config(**BASE).to_dict(), key: value}
    assert_refused(FAMILIES["deberta-v2"].config_from_hf, hf, key)


def test_lens_importance_attribution_and_a_new_head_run(masked_lm):
    from analysis.attribution import attribute_text
    from analysis.head_importance import compute_gradient_importance
    from analysis.lens import logit_lens
    from analysis.metrics import make_eval_set

    model, _, _ = masked_lm
    trace = model.run(TEXT)
    lens = logit_lens(model, trace, top_k=3)  # its last layer is the model's own output
    torch.testing.assert_close(lens.top_probs[-1], trace.logits[0].softmax(-1).topk(3).values, atol=1e-5, rtol=0)
    scores = compute_gradient_importance(model, make_eval_set(model, BATCH, batch_size=2), normalize=False).scores
    assert scores.shape == (model.n_layers, model.n_heads)
    assert torch.isfinite(scores).all() and (scores.sum(-1) > 0).all()  # every layer's heads get a gradient

    classifier = model.with_head("sequence-classification", labels=["no", "yes"])
    assert classifier.run(BATCH).logits.shape == (2, 2)
    ig = attribute_text(classifier, TEXT, methods=["integrated_gradients"]).results["integrated_gradients"]
    assert abs(float(ig.scores.sum()) - ig.output_difference) <= 0.05 * abs(ig.output_difference) + 1e-6
