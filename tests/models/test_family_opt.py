"""OPT against transformers: pre-norm with a final norm and post-norm without one, positions counted from the
attention mask with the offset of 2 (left padding included), a narrower embedding projected in and out
(OPT-350M), norms without weights, no biases; the sequence classifier; a bare OPTModel checkpoint; every config key
transformers reads is mapped or refused."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, opt
from tests.models.config_keys import assert_refused
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=40, num_hidden_layers=3, num_attention_heads=5, ffn_dim=37, max_position_embeddings=64)

CASES = {
    "pre-norm": dict(tie_word_embeddings=False),
    "post-norm-350m-projections": dict(do_layer_norm_before=False, word_embed_proj_dim=24),
    "pre-norm-projections-no-affine-no-bias": dict(word_embed_proj_dim=24, layer_norm_elementwise_affine=False,
                                                   enable_bias=False, activation_function="gelu"),
}


@pytest.fixture(autouse=True)
def _init_without_affine(monkeypatch):
    """transformers 4.57's OPTPreTrainedModel._init_weights fills every LayerNorm's weight, and with
    layer_norm_elementwise_affine false there is none: it cannot build such a model at all. Initialisation only; the
    arithmetic is untouched (every weight is scrambled afterwards anyway)."""
    from transformers.models.opt import modeling_opt as reference

    original = reference.OPTPreTrainedModel._init_weights

    def init(self, module):
        if not (isinstance(module, torch.nn.LayerNorm) and module.weight is None):
            original(self, module)

    monkeypatch.setattr(reference.OPTPreTrainedModel, "_init_weights", init)


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.OPTConfig, tf.OPTForCausalLM, tmp_path / "m", **{**TINY, **CASES[case]})
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_positions_follow_the_attention_mask(tmp_path):
    """Left padding: transformers counts a token's position from the mask, so a left-padded row equals the row alone."""
    reference = make_decoder_checkpoint(tf.OPTConfig, tf.OPTForCausalLM, tmp_path / "m", **TINY)
    model = load_model(str(tmp_path / "m"))
    alone = model.run("the cat sat .")
    n = alone.input_ids.shape[1]
    ids = torch.cat([torch.zeros(1, 3, dtype=torch.long), alone.input_ids], dim=1)  # 3 pads on the left
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, n, dtype=torch.long)], dim=1)
    with torch.no_grad():
        ours = model.network(input_ids=ids, attention_mask=mask, capture=False)
        theirs = reference(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(ours.logits[0, 3:], theirs.logits[0, 3:], atol=1e-4, rtol=0)
    torch.testing.assert_close(ours.logits[0, 3:], alone.logits[0], atol=1e-4, rtol=0)


def test_sequence_classifier_equals_transformers(tmp_path):
    check_sequence_classification(tf.OPTConfig, tf.OPTForSequenceClassification, tmp_path / "m", word_embed_proj_dim=24, **TINY)


def test_bare_model_checkpoint_round_trips(tmp_path):
    """OPTModel keeps its body under `decoder.`: read it, and write it so that transformers reads it back."""
    reference = make_decoder_checkpoint(tf.OPTConfig, tf.OPTModel, tmp_path / "m", **TINY)
    model = load_model(str(tmp_path / "m"))
    assert model.task is None
    trace = model.run(BATCH)
    model.save_pretrained(tmp_path / "saved")
    for folder, body in ((tmp_path / "m", reference), (tmp_path / "saved", None)):
        body = body or tf.OPTModel.from_pretrained(folder, attn_implementation="eager").eval()
        with torch.no_grad():
            theirs = body(input_ids=trace.input_ids, attention_mask=trace.attention_mask, output_hidden_states=True)
        real = trace.attention_mask.bool()
        for a, b in zip(trace.hidden_states, theirs.hidden_states):
            torch.testing.assert_close(a[real], b[real], atol=1e-4, rtol=0)


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to OPTConfig's defaults: ours must be the same."""
    theirs = tf.OPTConfig().to_dict()
    assert {k: theirs[k] for k in opt.DEFAULTS if k != "word_embed_proj_dim"} == {
        k: v for k, v in opt.DEFAULTS.items() if k != "word_embed_proj_dim"}
    assert theirs["word_embed_proj_dim"] == theirs["hidden_size"]  # None: the model's width


def test_a_refused_value_names_its_key():
    hf = {**tf.OPTConfig(**TINY).to_dict(), "activation_function": "gelu_fast"}
    assert_refused(FAMILIES["opt"].config_from_hf, hf, "activation_function")
