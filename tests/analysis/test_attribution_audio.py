"""Audio attribution wired to tiny random Whisper and Wav2Vec2-classifier checkpoints: shapes, targets, completeness."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.attribution.audio import attribute_audio
from models import load_model
from models.errors import InputError
from tests.tiny_modal_models import make_wav2vec2, make_whisper, noise_clip

CLIP = noise_clip(0.5)  # 8,000 samples at 16 kHz


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper")
    make_whisper(folder)
    return load_model(str(folder))


@pytest.fixture(scope="module")
def audio_classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("wav2vec2-cls")
    make_wav2vec2(folder, kind="cls")
    return load_model(str(folder))


def test_whisper_explains_its_own_transcript_over_the_clip_frames(whisper):
    report = attribute_audio(whisper, CLIP, sampling_rate=16000,
                             methods=["input_x_gradient", "attention_rollout", "attention_x_gradient"])
    frames = int(np.ceil(len(CLIP) / whisper.processor.hop_length))
    assert report.unit_seconds == pytest.approx(0.01)
    assert report.target.index == 0 and report.target.label.startswith("whole transcript")
    for key, result in report.results.items():
        assert result.scores.shape == (frames,) and torch.isfinite(result.scores).all(), key
    assert report.results["attention_rollout"].scores.sum() > 0
    transcript = whisper.run(audio=[CLIP], sampling_rate=16000).extras["transcripts"][0]
    assert transcript.strip() in report.target.label


def test_whisper_token_targets_and_their_range(whisper):
    report = attribute_audio(whisper, CLIP, sampling_rate=16000, methods=["saliency"], target=1)
    assert report.target.label.startswith("token 1")
    with pytest.raises(InputError, match="out of range"):
        attribute_audio(whisper, CLIP, sampling_rate=16000, methods=["saliency"], target=500)


def test_whisper_integrated_gradients_report_the_final_step_count(whisper):
    report = attribute_audio(whisper, CLIP, sampling_rate=16000, methods=["integrated_gradients"],
                             params={"integrated_gradients": {"n_steps": 4, "max_steps": 8}})
    ig = report.results["integrated_gradients"]
    assert ig.n_steps in (4, 8) and ig.convergence_delta is not None
    assert float(ig.scores.sum()) == pytest.approx(ig.output_difference + ig.convergence_delta, abs=1e-4)


def test_audio_classifier_integrated_gradients_are_complete(audio_classifier):
    report = attribute_audio(audio_classifier, CLIP, sampling_rate=16000,
                             methods=["integrated_gradients", "occlusion", "attention_rollout"], target=0)
    ig = report.results["integrated_gradients"]
    assert ig.converged and abs(ig.convergence_delta) <= 0.05 * abs(ig.output_difference) + 1e-5
    with torch.no_grad():
        values = audio_classifier.prepare(audio=[CLIP], sampling_rate=16000).inputs["input_values"]
        full = audio_classifier.forward(input_values=values, capture=False).logits[0, 0]
        silent = audio_classifier.forward(input_values=torch.zeros_like(values), capture=False).logits[0, 0]
    assert ig.output_difference == pytest.approx(float(full - silent), abs=1e-4)
    n = report.results["occlusion"].scores.shape[0]
    assert report.results["attention_rollout"].scores.shape == (n,)
    assert report.target.label == audio_classifier.labels[0]


def test_models_without_a_decision_and_empty_clips_are_refused(tmp_path, audio_classifier):
    make_wav2vec2(tmp_path / "base", kind="base")
    with pytest.raises(InputError, match="no task head"):
        attribute_audio(load_model(str(tmp_path / "base")), CLIP, sampling_rate=16000, methods=["saliency"])
    with pytest.raises(InputError, match="no samples"):
        attribute_audio(audio_classifier, np.zeros(0, dtype=np.float32), sampling_rate=16000, methods=["saliency"])
