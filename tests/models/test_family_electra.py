"""ELECTRA against transformers: every head (the discriminator, the generator's masked LM, sequence and token
classification, QA) with embeddings narrower than the residual stream (embedding_size 16, hidden 32) and equal to
it (no embeddings_project); refusals name their key."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES
from models.pipelines import pipeline
from models.task_heads import available_heads, head_is_trained
from tests.models.config_keys import assert_refused
from tests.models.encoder_parity import (BATCH, check_encoder_head, fill_mask_matches_transformers,
                                         make_encoder_checkpoint, reference_inputs)

SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, pad_token_id=0)
HEADS = {"replaced-token-detection": "ElectraForPreTraining", "masked-lm": "ElectraForMaskedLM",
         "sequence-classification": "ElectraForSequenceClassification",
         "token-classification": "ElectraForTokenClassification",
         "question-answering": "ElectraForQuestionAnswering"}
LABELLED = ("sequence-classification", "token-classification")


def _checkpoint(class_name: str, folder, embedding_size: int = 16, **extra):
    return make_encoder_checkpoint(tf.ElectraConfig, getattr(tf, class_name), folder, "bert",
                                   embedding_size=embedding_size, **SIZE, **extra)


def test_electra_has_every_head_under_transformers_names():
    assert available_heads("electra") == ["masked-lm", "sequence-classification", "token-classification",
                                          "question-answering", "replaced-token-detection"]
    assert {t: f.architecture for t, f in FAMILIES["electra"].heads.items()} == HEADS


@pytest.mark.parametrize("embedding_size", [16, 32], ids=["projected", "unprojected"])
@pytest.mark.parametrize("task", list(HEADS))
def test_head_matches_transformers(task, embedding_size, tmp_path):
    extra = dict(num_labels=3) if task in LABELLED else {}
    reference = _checkpoint(HEADS[task], tmp_path / "ckpt", embedding_size, **extra)
    assert hasattr(reference.electra, "embeddings_project") == (embedding_size != 32)
    check_encoder_head(reference, tmp_path / "ckpt", tmp_path, task)


def test_discriminator_scores_every_token_and_serves_no_pipeline(tmp_path):
    """transformers has no pipeline for ElectraForPreTraining; its per-token scores are the trace's logits."""
    _checkpoint("ElectraForPreTraining", tmp_path)
    model = load_model(str(tmp_path))
    trace = model.run(BATCH)
    assert trace.logits.shape == trace.input_ids.shape  # (B, T): one "replaced" logit per token
    assert model.tasks == () and not model.has_lm_head
    with pytest.raises(Exception, match="token-classification"):
        pipeline("token-classification", model=model)


def test_generator_fills_masks_as_transformers(tmp_path):
    _checkpoint("ElectraForMaskedLM", tmp_path)
    fill_mask_matches_transformers(tmp_path, "the cat [MASK] on the mat .")


@pytest.mark.parametrize("task", ["sequence-classification", "masked-lm", "replaced-token-detection"])
def test_head_put_on_a_bare_body_loads_in_transformers(task, tmp_path):
    _checkpoint("ElectraModel", tmp_path / "body")
    body = load_model(str(tmp_path / "body"))
    swapped = body.with_head(task, labels=["no", "yes"] if task in LABELLED else None, seed=1)
    assert head_is_trained(swapped) is False
    with torch.no_grad():  # fresh heads have zero biases: make every head weight count
        for p in swapped.network.head.parameters():
            if p is not swapped.network.embed.word.weight:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    swapped.save_pretrained(tmp_path / "saved")
    reference = getattr(tf, HEADS[task]).from_pretrained(tmp_path / "saved", attn_implementation="eager").eval()
    trace = swapped.run(BATCH)
    with torch.no_grad():
        theirs = reference(**reference_inputs(reference, trace)).logits
    real = trace.attention_mask.bool()
    ours = trace.logits
    if ours.dim() >= 2 and ours.shape[:2] == real.shape:
        ours, theirs = ours[real], theirs[real]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("key, value", [("position_embedding_type", "relative_key_query"), ("is_decoder", True),
                                        ("add_cross_attention", True), ("hidden_act", "mish")])
def test_a_refused_value_names_its_key(key, value):
    hf = tf.ElectraConfig().to_dict()
    hf[key] = value
    assert_refused(FAMILIES["electra"].config_from_hf, hf, key)


@pytest.mark.parametrize("class_name, config", [("ElectraForMultipleChoice", {}), ("ElectraForCausalLM", {"is_decoder": True})])
def test_unimplemented_heads_are_refused_by_name(class_name, config, tmp_path):
    _checkpoint(class_name, tmp_path, **config)
    with pytest.raises(UnsupportedArchitectureError, match="multiple-choice|is_decoder=True"):
        load_model(str(tmp_path))
