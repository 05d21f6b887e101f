"""ModernBERT equals transformers (eager attention) on tiny scrambled checkpoints: the body with every switch, each
task head, bidirectional local windows that bite (local_attention 4 on 12+ tokens), pruning, saving both ways, and
each refused config value named in its error.

transformers' ModernBERT `hidden_states[-1]` is the last block's output before `final_norm`: ours is
`trace.resid_final`, and our last hidden state (after the final norm) is its `last_hidden_state`."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import transformers as tf

from models import load_model, pipeline
from models.families import FAMILIES
from tests.models.config_keys import assert_refused
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
SPECIAL = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
SPECIAL_MAP = {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
               "unk_token": "[UNK]"}
LONG = "a dog barked loudly and then ran away quickly . the cat sat on the mat"  # 17 tokens with [CLS], [SEP]
BATCH = [LONG, "the cat sat ."]
PAIRS = [("who was it ?", "it was me and then the dog ran away quickly"), ("the cat sat ?", "a dog .")]

# 3 layers, hidden 32, 4 heads; global layers 0 (and 2 when every second is global); a window of 4 tokens
TINY = dict(vocab_size=64, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
            sep_token_id=2, local_attention=4, global_attn_every_n_layers=2,
            global_rope_theta=1000.0, local_rope_theta=7.0)  # bases far apart: a layer with the wrong one shows
CASES = {
    "real-switches": dict(),  # no biases anywhere, as in answerdotai/ModernBERT-base
    "every-bias": dict(attention_bias=True, mlp_bias=True, norm_bias=True, classifier_bias=True),
    # odd shapes: head width 6, an odd window (5 // 2 = 2 each side), one global layer in three, tanh GELU
    "odd-shapes": dict(hidden_size=36, num_attention_heads=6, intermediate_size=23, local_attention=5,
                       global_attn_every_n_layers=3, hidden_activation="gelu_pytorch_tanh", norm_eps=1e-3),
    # no local base: transformers rotates local layers by the global one
    "local-theta-none": dict(local_rope_theta=None, attention_bias=True),
    "all-global": dict(global_attn_every_n_layers=1, mlp_bias=True),
}


def make_checkpoint(model_class: Any, folder: Path, seed: int = 0, **config: Any):
    """A tiny scrambled transformers ModernBERT saved to `folder` with a word-level tokenizer; returns it."""
    torch.manual_seed(seed)
    cfg = tf.ModernBertConfig(**{**TINY, **config})
    cfg._attn_implementation = "eager"
    model = model_class(cfg).eval()
    with torch.no_grad():  # scrambled: every parameter random, norms around 1
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name else 0.0))
    model.save_pretrained(folder)
    tokenizer = word_tokenizer(SPECIAL, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B [SEP]")
    tokenizer.add_special_tokens(["[MASK]"])  # one token, as in ModernBERT's tokenizer files
    save_tokenizer(tokenizer, folder, SPECIAL_MAP)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["model_input_names"] = ["input_ids", "attention_mask"]  # as ModernBERT's: no token types
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return model


def reference(model, trace):
    with torch.no_grad():  # ModernBERT reads no token types
        return model(input_ids=trace.input_ids, attention_mask=trace.attention_mask, output_hidden_states=True,
                     output_attentions=True)


def assert_same_body(ours, theirs, atol: float = ATOL) -> None:
    real = ours.attention_mask.bool()
    assert len(ours.hidden_states) == len(theirs.hidden_states)
    for a, b in zip(ours.hidden_states[:-1], theirs.hidden_states[:-1]):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)
    torch.testing.assert_close(ours.resid_final[real], theirs.hidden_states[-1][real], atol=atol, rtol=0)
    assert len(ours.attentions) == len(theirs.attentions)
    for a, b in zip(ours.attentions, theirs.attentions):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=atol, rtol=0)


def assert_same_logits(task: str, ours, theirs, atol: float = ATOL) -> None:
    real = ours.attention_mask.bool()
    if task == "question-answering":  # ours (B, T, 2) = (start, end)
        torch.testing.assert_close(ours.logits[..., 0][real], theirs.start_logits[real], atol=atol, rtol=0)
        torch.testing.assert_close(ours.logits[..., 1][real], theirs.end_logits[real], atol=atol, rtol=0)
    elif task == "sequence-classification":
        torch.testing.assert_close(ours.logits, theirs.logits, atol=atol, rtol=0)
    else:
        torch.testing.assert_close(ours.logits[real], theirs.logits[real], atol=atol, rtol=0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_body_equals_transformers(tmp_path, case):
    theirs_model = make_checkpoint(tf.ModernBertModel, tmp_path, **CASES[case])
    model = load_model(str(tmp_path))
    assert model.task is None and model.family == "modernbert"
    for given in (LONG, BATCH, PAIRS):
        trace = model.run(given)
        theirs = reference(theirs_model, trace)
        assert_same_body(trace, theirs)
        real = trace.attention_mask.bool()
        torch.testing.assert_close(trace.hidden_states[-1][real], theirs.last_hidden_state[real], atol=ATOL, rtol=0)
        fast = model.run(given, capture=False)  # fused attention, same windows
        torch.testing.assert_close(fast.hidden_states[-1][real], trace.hidden_states[-1][real], atol=1e-5, rtol=0)
    assert trace.attention_mask[1].sum() < trace.attention_mask[0].sum()  # the pairs were padded


def test_local_layers_see_half_the_window_either_side(tmp_path):
    make_checkpoint(tf.ModernBertModel, tmp_path)
    model = load_model(str(tmp_path))
    assert model.config.layer_types == ("full_attention", "sliding_attention", "full_attention")
    trace = model.run(LONG)
    T = trace.input_ids.shape[1]
    assert T >= 12
    far = torch.tensor([[abs(q - k) > 2 for k in range(T)] for q in range(T)])
    assert (trace.attentions[1][0][:, far] == 0).all()  # local: nothing beyond |q - k| = 4 // 2
    assert (trace.attentions[0][0][:, far] > 0).all()  # global: everything


HEADS = {
    "masked-lm": tf.ModernBertForMaskedLM,
    "sequence-classification": tf.ModernBertForSequenceClassification,
    "token-classification": tf.ModernBertForTokenClassification,
    "question-answering": tf.ModernBertForQuestionAnswering,
}
HEAD_CASES = [
    ("masked-lm", dict()),
    ("masked-lm", dict(norm_bias=True, classifier_bias=True, decoder_bias=False, classifier_activation="silu")),
    ("masked-lm", dict(tie_word_embeddings=False)),  # an unembedding of its own
    ("sequence-classification", dict(num_labels=3)),
    ("sequence-classification", dict(num_labels=3, classifier_pooling="mean", classifier_bias=True,
                                     norm_bias=True)),
    ("token-classification", dict(num_labels=5, classifier_activation="relu")),
    ("question-answering", dict(attention_bias=True)),
]


def _head_id(value):
    return value if isinstance(value, str) else "-".join(f"{k}={v}" for k, v in value.items()) or "defaults"


@pytest.mark.parametrize("task, config", HEAD_CASES, ids=_head_id)
def test_head_equals_transformers_and_saves_both_ways(tmp_path, task, config):
    theirs_model = make_checkpoint(HEADS[task], tmp_path / "m", **config)
    model = load_model(str(tmp_path / "m"))
    assert model.task == task
    for given in (LONG, BATCH, PAIRS):
        trace = model.run(given)
        theirs = reference(theirs_model, trace)
        assert_same_body(trace, theirs)
        assert_same_logits(task, trace, theirs)
    if task == "masked-lm":  # tied unless the config says otherwise
        tied = model.network.head.decoder.weight is model.network.embed.word.weight
        assert tied == config.get("tie_word_embeddings", True)

    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    again = load_model(str(saved))
    batch, reloaded_batch = model.run(BATCH), again.run(BATCH)
    for a, b in zip(batch.hidden_states, reloaded_batch.hidden_states):
        assert torch.equal(a, b)
    assert torch.equal(batch.logits, reloaded_batch.logits)
    reloaded, info = type(theirs_model).from_pretrained(saved, attn_implementation="eager", output_loading_info=True)
    assert not any(info.values()), info  # no missing, unexpected or mismatched weights
    assert_same_logits(task, batch, reference(reloaded.eval(), batch))


@pytest.mark.parametrize("task", ["masked-lm", "sequence-classification"])
def test_pruned_equals_masked_and_reloads(tmp_path, task):
    make_checkpoint(HEADS[task], tmp_path / "m", attention_bias=True, num_labels=3)
    model = load_model(str(tmp_path / "m"))
    spec = {0: [0, 3], 1: [1], 2: [0, 1, 2]}  # a global, a local and a global layer
    with model.mask_heads(spec):
        masked = model.run(PAIRS)
    pruned = model.prune_heads(spec)
    assert pruned.head_ids() == [[1, 2], [0, 2, 3], [3]]
    again = pruned.run(PAIRS)
    real = masked.attention_mask.bool()
    for a, b in zip(again.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(again.logits, masked.logits, atol=1e-5, rtol=0)
    pruned.save_pretrained(tmp_path / "pruned")  # the fused Wqkv joined from the heads each layer kept
    reloaded = load_model(str(tmp_path / "pruned"))
    assert reloaded.head_ids() == pruned.head_ids()
    assert torch.equal(reloaded.run(PAIRS).logits, again.logits)


def test_a_bare_body_takes_a_fresh_head(tmp_path):
    make_checkpoint(tf.ModernBertModel, tmp_path, classifier_pooling="mean")
    model = load_model(str(tmp_path)).with_head("sequence-classification", labels=["no", "yes"])
    trace = model.run(BATCH)
    assert trace.logits.shape == (2, 2)
    model.save_pretrained(tmp_path / "saved")
    reloaded = tf.ModernBertForSequenceClassification.from_pretrained(tmp_path / "saved", attn_implementation="eager")
    assert_same_logits("sequence-classification", trace, reference(reloaded.eval(), trace))


def test_pipelines_equal_transformers(tmp_path):
    make_checkpoint(tf.ModernBertForMaskedLM, tmp_path / "mlm")
    ours = pipeline("fill-mask", str(tmp_path / "mlm"))(f"{LONG} [MASK] .")
    theirs = tf.pipeline("fill-mask", model=str(tmp_path / "mlm"), device="cpu")(f"{LONG} [MASK] .")
    assert [r["token"] for r in ours] == [r["token"] for r in theirs] and len(ours) == 5
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)
    make_checkpoint(tf.ModernBertForQuestionAnswering, tmp_path / "qa")
    question, context = "who sat ?", LONG
    ours = pipeline("question-answering", str(tmp_path / "qa"))(question=question, context=context)
    theirs = tf.pipeline("question-answering", model=str(tmp_path / "qa"), device="cpu")(question=question,
                                                                                          context=context)
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)


def test_missing_keys_mean_transformers_defaults():
    cfg = FAMILIES["modernbert"].config_from_hf({"model_type": "modernbert"})
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_mlp, cfg.vocab_size) == (22, 768, 12, 1152, 50368)
    assert cfg.rope_theta == 160000.0 and cfg.rope_theta_local == 10000.0 and cfg.sliding_window == 128
    assert cfg.layer_types[:4] == ("full_attention", "sliding_attention", "sliding_attention", "full_attention")
    assert not (cfg.attention_bias or cfg.output_bias or cfg.mlp_bias) and not cfg.causal


REFUSED = [
    ("hidden_activation", "gelu_fast"),
    ("classifier_activation", "mish"),
    ("classifier_pooling", "max"),
    ("global_attn_every_n_layers", 0),
    ("head_dim", 16),  # hidden 32 / 4 heads is 8
    ("partial_rotary_factor", 0.5),
    ("rope_scaling", {"rope_type": "linear", "factor": 2.0}),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=lambda v: str(v)[:24])
def test_a_refused_value_names_its_key(key, value):
    hf = tf.ModernBertConfig(**TINY).to_dict()
    hf[key] = value
    assert_refused(FAMILIES["modernbert"].config_from_hf, hf, key)


def test_plain_rotary_spelled_out_is_accepted():
    hf = tf.ModernBertConfig(**TINY, rope_scaling={"rope_type": "default"}, head_dim=8).to_dict()
    assert FAMILIES["modernbert"].config_from_hf(hf).rope_scaling is None
