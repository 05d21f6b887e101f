"""Wav2Vec2 parity with transformers (eager attention) on tiny random checkpoints: base and stable layouts, CTC and classification heads."""
from __future__ import annotations

import pytest
import torch

from models import load_model
from tests.tiny_modal_models import make_wav2vec2, noise_clip

ATOL = 1e-5
CASES = [("ctc", False), ("ctc", True), ("cls", False), ("base", True)]


@pytest.fixture(scope="module", params=CASES, ids=[f"{k}-{'stable' if s else 'base'}" for k, s in CASES])
def pair(request, tmp_path_factory):
    kind, stable = request.param
    folder = tmp_path_factory.mktemp(f"w2v2-{kind}")
    return kind, stable, make_wav2vec2(folder, kind, stable), load_model(str(folder))


def _waves():
    return [noise_clip(0.5, seed=0), noise_clip(0.3, seed=1)]


def _reference(reference, trace, stable, **kwargs):
    values = trace.extras["input_values"]
    if stable:  # these checkpoints' feature extractor returns a sample mask, as large Wav2Vec2 models do
        kwargs["attention_mask"] = torch.tensor([[1] * 8000, [1] * 4800 + [0] * 3200])
    with torch.no_grad():
        return reference(input_values=values, output_attentions=True, output_hidden_states=True, **kwargs)


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


def test_audio_matches_transformers(pair):
    kind, stable, reference, model = pair
    trace = model.run(audio=_waves(), sampling_rate=16000)
    assert trace.modality == "audio" and trace.tokens[0][:3] == ["0s", "0.00125s", "0.0025s"]  # 20 samples per frame
    # 0.5 s at 16 kHz through kernels (10, 3, 3) and strides (5, 2, 2): 399 frames
    assert trace.attention_mask.shape == (2, 399)
    if stable:
        assert trace.lengths == [399, 239]  # the shorter clip's padding is masked
    _compare(kind, trace, _reference(reference, trace, stable))
    assert model.task == {"ctc": "ctc", "cls": "audio-classification", "base": None}[kind]


def test_resampled_input_matches_the_same_audio_at_model_rate(pair):
    from scipy.signal import resample_poly
    _, _, _, model = pair
    at_8k = resample_poly(noise_clip(0.5), 1, 2)  # 8 kHz
    trace = model.run(audio=[at_8k], sampling_rate=8000)
    assert trace.extras["waveforms"][0].shape == (8000,)


def test_pruned_equals_masked(pair, tmp_path):
    kind, _, _, model = pair
    with model.mask_heads({0: [0, 2], 1: [3]}):
        masked = model.run(audio=_waves(), sampling_rate=16000)
    pruned = model.prune_heads({0: [0, 2], 1: [3]})
    ours = pruned.run(audio=_waves(), sampling_rate=16000)
    real = ours.attention_mask.bool()
    torch.testing.assert_close(ours.hidden_states[-1][real], masked.hidden_states[-1][real], atol=ATOL, rtol=0)
    assert masked.attentions[0][:, [0, 2]].abs().max() == 0  # reported as transformers 4.x does under head_mask
    pruned.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.head_ids() == [[1, 3], [0, 1, 2]]
    torch.testing.assert_close(again.run(audio=_waves(), sampling_rate=16000).hidden_states[-1], ours.hidden_states[-1])


def test_saved_folder_loads_in_transformers_with_same_outputs(pair, tmp_path):
    import transformers as tf
    kind, stable, _, model = pair
    model.save_pretrained(tmp_path)
    cls = {"ctc": tf.Wav2Vec2ForCTC, "cls": tf.Wav2Vec2ForSequenceClassification, "base": tf.Wav2Vec2Model}[kind]
    reloaded, info = cls.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    trace = model.run(audio=_waves(), sampling_rate=16000)
    _compare(kind, trace, _reference(reloaded.eval(), trace, stable))


def test_ctc_decoding_reads_characters(pair):
    kind, _, _, model = pair
    if kind != "ctc":
        pytest.skip("CTC head only")
    # blank (0), repeats merged, "|" is a space: "aab|<pad>c" -> "ab c"
    assert model.tokenizer.decode([5, 5, 0, 6, 4, 0, 7, 7]) == "ab c"
