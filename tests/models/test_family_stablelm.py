"""StableLM against transformers: sequential and parallel residuals, partial rotary, grouped key/value heads,
q/k/v biases, per-head q/k LayerNorms with their own weights (kept right through pruning a whole key/value
group); the sequence classifier; every config key transformers reads is mapped or refused."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, stablelm
from tests.models.config_keys import assert_refused
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2, intermediate_size=37,
            max_position_embeddings=64)  # d_head 8: 2 dims turn

CASES = {
    "sequential": {},
    "parallel-qk-layernorm-bias": dict(use_parallel_residual=True, qk_layernorm=True, use_qkv_bias=True,
                                       partial_rotary_factor=0.5, rope_theta=500.0, tie_word_embeddings=True),
}


@pytest.fixture(autouse=True)
def _init_without_bias(monkeypatch):
    """transformers 4.57's StableLmPreTrainedModel._init_weights zeroes every LayerNorm's bias, and the per-head q/k
    LayerNorms have none: with qk_layernorm it cannot build a model at all. Initialisation only; the arithmetic is
    untouched (every weight is scrambled afterwards anyway)."""
    from transformers.models.stablelm import modeling_stablelm as reference

    original = reference.StableLmPreTrainedModel._init_weights

    def init(self, module):
        if isinstance(module, torch.nn.LayerNorm) and module.bias is None:
            module.weight.data.fill_(1.0)
        else:
            original(self, module)

    monkeypatch.setattr(reference.StableLmPreTrainedModel, "_init_weights", init)


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.StableLmConfig, tf.StableLmForCausalLM, tmp_path / "m",
                                        **{**TINY, **CASES[case]})
    # layer 1 loses key/value group 0 (heads 0-2) with its key norm, layer 2 one query head and its norm
    check_decoder_family(reference, tmp_path / "m", tmp_path, prune={1: [0, 1, 2], 2: [5]})


def test_per_head_norms_are_their_own(tmp_path):
    make_decoder_checkpoint(tf.StableLmConfig, tf.StableLmForCausalLM, tmp_path / "m", qk_layernorm=True, **TINY)
    attn = load_model(str(tmp_path / "m")).network.blocks[1].attn
    assert attn.q_norm.weight.shape == (6, 8) and attn.k_norm.weight.shape == (2, 8)
    assert not torch.equal(attn.q_norm.weight[0], attn.q_norm.weight[1])  # scrambled: one weight per head


def test_sequence_classifier_equals_transformers(tmp_path):
    check_sequence_classification(tf.StableLmConfig, tf.StableLmForSequenceClassification, tmp_path / "m", **TINY)


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to StableLmConfig's defaults: ours must be the same."""
    theirs = tf.StableLmConfig().to_dict()
    assert {k: theirs[k] for k in stablelm.DEFAULTS} == stablelm.DEFAULTS


@pytest.mark.parametrize("key, value", [("hidden_act", "gelu_fast"), ("rope_scaling", {"rope_type": "linear", "factor": 2.0}),
                                        ("partial_rotary_factor", 0.4)])  # 3 of 8 dims: transformers cannot run it
def test_a_refused_value_names_its_key(key, value):
    hf = {**tf.StableLmConfig(**TINY).to_dict(), key: value}
    assert_refused(FAMILIES["stablelm"].config_from_hf, hf, key)
