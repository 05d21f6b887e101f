"""Gemma, Gemma 2 and Gemma 3 (text) equal transformers on tiny scrambled checkpoints: every variant their configs
switch on, the classifier heads, and each refused config value named in its error."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, gemma
from tests.models.config_keys import assert_refused
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

# odd shapes: head_dim 10 is neither hidden / heads (6) nor a power of two; 3 kv heads serve 6 query heads
TINY = dict(hidden_size=36, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=3, head_dim=10,
            intermediate_size=45, max_position_embeddings=64)
CLASSES = {"gemma": (tf.GemmaConfig, tf.GemmaForCausalLM), "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM),
           "gemma3_text": (tf.Gemma3TextConfig, tf.Gemma3ForCausalLM)}

CASES = {
    "gemma": dict(),
    # exact-erf GELU, and an unembedding of its own
    "gemma-mha-bias-erf-untied": dict(num_key_value_heads=6, attention_bias=True, hidden_act="gelu",
                                      tie_word_embeddings=False),
    # the default soft-caps (50 on scores, 30 on logits) barely bite on tiny models: small caps do
    "gemma2": dict(sliding_window=3, attn_logit_softcapping=2.0, final_logit_softcapping=1.5, query_pre_attn_scalar=7),
    "gemma2-layer-types-bias": dict(sliding_window=2, attention_bias=True, num_key_value_heads=2,
                                    layer_types=["full_attention", "sliding_attention", "sliding_attention"]),
    # rope_theta and rope_local_base_freq far apart so a layer rotated by the wrong base would show
    "gemma3": dict(sliding_window=3, sliding_window_pattern=2, rope_theta=1000.0, rope_local_base_freq=5.0,
                   query_pre_attn_scalar=12, final_logit_softcapping=2.0),
    "gemma3-all-sliding": dict(sliding_window=2, rope_local_base_freq=20.0, hidden_activation="gelu"),
    # transformers' Gemma 3 keeps attn_logit_softcapping in its config but never applies it
    "gemma3-attn-cap-ignored": dict(sliding_window=3, attn_logit_softcapping=0.5,
                                    layer_types=["full_attention", "sliding_attention", "full_attention"]),
    # rotary scaling: Gemma 3's real linear x8 on the global layers (the local ones stay plain); dynamic past a
    # short context, so the base grows while generating (here without soft-caps); YaRN's ramp and attention factor
    "gemma3-rope-linear": dict(sliding_window=3, sliding_window_pattern=2, rope_local_base_freq=50.0,
                               rope_scaling={"rope_type": "linear", "factor": 8.0}),
    "gemma2-no-caps-rope-dynamic": dict(sliding_window=4, attn_logit_softcapping=None, final_logit_softcapping=None,
                                        max_position_embeddings=16,
                                        rope_scaling={"rope_type": "dynamic", "factor": 3.0}),
    "gemma-rope-yarn": dict(rope_theta=500.0, rope_scaling={"rope_type": "yarn", "factor": 2.0,
                                                            "original_max_position_embeddings": 8}),
}


def _model_type(case: str) -> str:
    return {"gemma": "gemma", "gemma2": "gemma2", "gemma3": "gemma3_text"}[case.split("-")[0]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_causal_lm_equals_transformers(tmp_path, case):
    config_class, model_class = CLASSES[_model_type(case)]
    reference = make_decoder_checkpoint(config_class, model_class, tmp_path / "m", **{**TINY, **CASES[case]})
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_the_variants_are_switched_on(tmp_path):
    """The cases above test what they say: sandwich norms, scales, caps, windows and local bases reach the model."""
    make_decoder_checkpoint(*CLASSES["gemma3_text"], tmp_path / "m", **{**TINY, **CASES["gemma3"]})
    model = load_model(str(tmp_path / "m"))
    cfg, block = model.config, model.network.blocks[0]
    assert cfg.layer_types == ("sliding_attention", "full_attention", "sliding_attention")
    assert (cfg.sliding_window, cfg.rope_theta, cfg.rope_theta_local, cfg.final_softcap) == (3, 1000.0, 5.0, 2.0)
    assert cfg.attention_scale == 12 ** -0.5 and cfg.attn_softcap is None and cfg.qk_norm
    assert block.norms == "sandwich" and block.ln1.unit_offset and block.attn.q_norm.weight.shape == (10,)
    assert model.network.embed.word.weight.data_ptr() == model.network.head.decoder.weight.data_ptr()  # tied


def test_a_gemma3_config_without_layer_types_follows_its_sliding_window_pattern():
    """Older Gemma 3 config.json files carry `sliding_window_pattern` and no `layer_types`."""
    hf = tf.Gemma3TextConfig(**{**TINY, "num_hidden_layers": 7}, sliding_window_pattern=3).to_dict()
    expected = tuple(hf.pop("layer_types"))
    assert expected.count("full_attention") == 2
    assert FAMILIES["gemma3"].config_from_hf({**hf, "sliding_window_pattern": 3}).layer_types == expected
    gemma2 = tf.Gemma2Config(**TINY).to_dict()
    derived = FAMILIES["gemma2"].config_from_hf({**gemma2, "layer_types": None}).layer_types
    assert derived == tuple(gemma2["layer_types"])


def test_missing_keys_mean_transformers_defaults():
    """config.json may leave keys out: transformers then uses its config class defaults, and so must we."""
    sizes = dict(vocab_size=64, hidden_size=36, num_attention_heads=6, num_key_value_heads=3, intermediate_size=45,
                 num_hidden_layers=2)
    for model_type, family in (("gemma", "gemma"), ("gemma2", "gemma2"), ("gemma3_text", "gemma3")):
        theirs = CLASSES[model_type][0](**sizes)
        ours = FAMILIES[family].config_from_hf({"model_type": model_type, **sizes})
        assert ours.d_head == theirs.head_dim == 256 and ours.rope_theta == theirs.rope_theta
        assert ours.layer_types == (tuple(theirs.layer_types) if model_type != "gemma" else None)
        assert ours.final_softcap == getattr(theirs, "final_logit_softcapping", None)
        assert ours.attn_softcap == (theirs.attn_logit_softcapping if model_type == "gemma2" else None)


SEQUENCE_CLASSIFIERS = {"gemma": tf.GemmaForSequenceClassification, "gemma2": tf.Gemma2ForSequenceClassification,
                        "gemma3_text": tf.Gemma3TextForSequenceClassification}
TOKEN_CLASSIFIERS = {"gemma": tf.GemmaForTokenClassification, "gemma2": tf.Gemma2ForTokenClassification}


@pytest.mark.parametrize("model_type, task", [*((t, "sequence-classification") for t in SEQUENCE_CLASSIFIERS),
                                              *((t, "token-classification") for t in TOKEN_CLASSIFIERS)])
def test_classifier_checkpoint_equals_transformers(tmp_path, model_type, task):
    classes = SEQUENCE_CLASSIFIERS if task == "sequence-classification" else TOKEN_CLASSIFIERS
    extra = dict(sliding_window=3, final_logit_softcapping=1.5) if model_type != "gemma" else {}
    reference = make_decoder_checkpoint(CLASSES[model_type][0], classes[model_type], tmp_path / "m", num_labels=3,
                                        **{**TINY, **extra})
    model = load_model(str(tmp_path / "m"))
    assert model.task == task
    trace = model.run(BATCH)
    assert trace.attention_mask[1].sum() < trace.attention_mask[0].sum()  # padded: the last real token differs
    with torch.no_grad():
        theirs = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask).logits
    real = trace.attention_mask.bool()
    if task == "token-classification":
        trace_logits, theirs = trace.logits[real], theirs[real]
    else:
        trace_logits = trace.logits
    assert trace_logits.shape[-1] == 3
    torch.testing.assert_close(trace_logits, theirs, atol=1e-4, rtol=0)  # no final soft-cap on classifiers


REFUSED = [
    ("gemma", "hidden_act", "gelu_fast"),
    ("gemma2", "hidden_activation", "swish"),
    ("gemma", "rope_scaling", {"rope_type": "su", "factor": 2.0}),  # no such type
    ("gemma3_text", "rope_scaling", {"rope_type": "linear"}),  # without its factor
    ("gemma3_text", "partial_rotary_factor", 0.5),
    ("gemma3_text", "use_bidirectional_attention", True),
    ("gemma2", "layer_types", ["sliding_attention", "chunked_attention", "full_attention"]),
    ("gemma3_text", "layer_types", ["full_attention"]),  # one entry for three layers
    ("gemma2", "sliding_window", None),
]


@pytest.mark.parametrize("model_type, key, value", REFUSED, ids=lambda v: str(v)[:24])
def test_a_refused_value_names_its_key(model_type, key, value):
    hf = CLASSES[model_type][0](**TINY).to_dict()
    hf[key] = value
    family = {"gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3"}[model_type]
    assert_refused(FAMILIES[family].config_from_hf, hf, key)


def test_plain_rotary_spelled_out_is_accepted():
    hf = tf.Gemma3TextConfig(**TINY, rope_scaling={"rope_type": "default"}).to_dict()
    assert FAMILIES["gemma3"].config_from_hf(hf).rope_scaling is None
