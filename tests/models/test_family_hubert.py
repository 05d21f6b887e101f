"""HuBERT parity with transformers (eager attention) on tiny random checkpoints made in the test: group-norm
feature encoders (no attention mask from the feature extractor, as hubert-base) and layer-norm ones (a mask, as
hubert-large), base and stable layer norm, with and without the projection's LayerNorm, BatchNorm positions."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models import load_model, pipeline
from tests.models.config_keys import assert_refused
from tests.tiny_modal_models import CTC_VOCAB, _randomise, noise_clip

ATOL = 1e-4
# (kind, feat_extract_norm, do_stable_layer_norm, extra config)
CASES = {
    "ctc-group": ("ctc", "group", False, {}),
    "ctc-layer-stable": ("ctc", "layer", True, {}),
    "cls-group-batchnorm": ("cls", "group", False, {"conv_pos_batch_norm": True, "feat_proj_layer_norm": False}),
    "base-layer": ("base", "layer", False, {}),
}


def make_hubert(folder: Path, kind: str, norm: str, stable: bool, seed: int = 0, **overrides):
    """HubertModel, HubertForCTC or HubertForSequenceClassification (2 labels), 2 layers, hidden 32, saved with its
    feature extractor (a sample mask only for layer-norm encoders) and CTC vocabulary."""
    import transformers as tf
    torch.manual_seed(seed)
    params = dict(vocab_size=len(CTC_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                  conv_bias=stable, feat_extract_norm=norm, do_stable_layer_norm=stable, num_conv_pos_embeddings=16,
                  num_conv_pos_embedding_groups=4, classifier_proj_size=8, pad_token_id=0, hidden_act="gelu")
    if kind == "cls":
        params.update(id2label={0: "no", 1: "yes"}, label2id={"no": 0, "yes": 1})
    params.update(overrides)
    cls = {"base": tf.HubertModel, "ctc": tf.HubertForCTC, "cls": tf.HubertForSequenceClassification}[kind]
    model = cls(tf.HubertConfig(**params))
    _randomise(model)
    with torch.no_grad():  # BatchNorm's running statistics are buffers: scramble them too, so parity sees them
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_(0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model.save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                return_attention_mask=norm == "layer").save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(CTC_VOCAB))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
         "word_delimiter_token": "|", "tokenizer_class": "Wav2Vec2CTCTokenizer"}))
    return model


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    kind, norm, stable, extra = CASES[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    reference = make_hubert(folder, kind, norm, stable, **extra)
    return kind, norm, reference, load_model(str(folder)), folder


def _waves():
    return [noise_clip(0.5, seed=0), noise_clip(0.3, seed=1)]


def _reference(reference, model, waves, **kwargs):
    """transformers on our processor's input_values, with the sample mask exactly when the feature extractor
    returns one (transformers' pipelines and processors do the same)."""
    inputs = model.prepare(audio=waves, sampling_rate=16000).inputs
    if inputs["attention_mask"] is not None:
        kwargs["attention_mask"] = inputs["attention_mask"]
    with torch.no_grad():
        return reference(input_values=inputs["input_values"], output_attentions=True, output_hidden_states=True,
                         **kwargs)


def _compare(kind, trace, theirs):
    real = trace.attention_mask.bool()  # (B, T) frames
    for a, b in zip(trace.hidden_states, theirs.hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=ATOL, rtol=0)
    for a, b in zip(trace.attentions, theirs.attentions, strict=True):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=ATOL, rtol=0)
    if kind == "ctc":
        torch.testing.assert_close(trace.logits[real], theirs.logits[real], atol=ATOL, rtol=0)
    elif kind == "cls":
        torch.testing.assert_close(trace.logits, theirs.logits, atol=ATOL, rtol=0)
    else:
        assert trace.logits is None


def test_single_clip_matches_transformers(case):
    kind, _, reference, model, _ = case
    trace = model.run(audio=[noise_clip(0.4, seed=2)], sampling_rate=16000)
    assert model.family == "hubert" and trace.modality == "audio" and trace.attention_mask.shape == (1, 319)
    assert model.task == {"ctc": "ctc", "cls": "audio-classification", "base": None}[kind]
    _compare(kind, trace, _reference(reference, model, [noise_clip(0.4, seed=2)]))


def test_padded_batch_matches_transformers(case):
    kind, norm, reference, model, _ = case
    trace = model.run(audio=_waves(), sampling_rate=16000)
    # group norm (hubert-base): no mask, the padding is heard as silence, as in transformers; layer norm: masked
    assert trace.lengths == ([399, 239] if norm == "layer" else [399, 399])
    _compare(kind, trace, _reference(reference, model, _waves()))
    if norm == "layer":  # masked padding changes nothing: the short clip alone gives the same frames
        alone = model.run(audio=_waves()[1:], sampling_rate=16000)
        torch.testing.assert_close(trace.hidden_states[-1][1, :239], alone.hidden_states[-1][0], atol=ATOL, rtol=0)


def test_pruned_equals_masked(case, tmp_path):
    _, _, _, model, _ = case
    with model.mask_heads({0: [0, 2], 1: [3]}):
        masked = model.run(audio=_waves(), sampling_rate=16000)
    pruned = model.prune_heads({0: [0, 2], 1: [3]})
    ours = pruned.run(audio=_waves(), sampling_rate=16000)
    real = ours.attention_mask.bool()
    torch.testing.assert_close(ours.hidden_states[-1][real], masked.hidden_states[-1][real], atol=ATOL, rtol=0)
    if ours.logits is not None:
        torch.testing.assert_close(ours.logits, masked.logits, atol=ATOL, rtol=0)
    pruned.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.head_ids() == [[1, 3], [0, 1, 2]] and model.head_ids() == [[0, 1, 2, 3]] * 2
    torch.testing.assert_close(again.run(audio=_waves(), sampling_rate=16000).hidden_states[-1], ours.hidden_states[-1])


def test_saved_folder_loads_in_transformers_with_same_outputs(case, tmp_path):
    import transformers as tf
    kind, _, _, model, _ = case
    model.save_pretrained(tmp_path)
    cls = {"ctc": tf.HubertForCTC, "cls": tf.HubertForSequenceClassification, "base": tf.HubertModel}[kind]
    reloaded, info = cls.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"], info
    trace = model.run(audio=_waves(), sampling_rate=16000)
    _compare(kind, trace, _reference(reloaded.eval(), model, _waves()))


def test_pipeline_matches_transformers(case):
    import transformers as tf
    kind, _, _, model, folder = case
    if kind == "base":
        pytest.skip("a bare body serves no pipeline")
    clip = noise_clip(0.6, seed=3)
    task = "automatic-speech-recognition" if kind == "ctc" else "audio-classification"
    ours = pipeline(task, model)({"raw": clip, "sampling_rate": 16000})
    theirs = tf.pipeline(task, model=str(folder), device="cpu")({"raw": clip, "sampling_rate": 16000})
    if kind == "ctc":
        assert ours == theirs
    else:
        assert [r["label"] for r in ours] == [r["label"] for r in theirs]
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)


@pytest.mark.parametrize("key, value", [("use_weighted_layer_sum", True), ("add_adapter", True),
                                        ("hidden_act", "mish")])
def test_a_refused_value_names_its_key(key, value):
    import transformers as tf
    from models.families import FAMILIES
    hf = tf.HubertConfig().to_dict()
    hf[key] = value
    assert_refused(FAMILIES["hubert"].config_from_hf, hf, key)
