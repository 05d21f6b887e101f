"""The effect of a mask on one input, and the pruning report: invariants on tiny models."""
from __future__ import annotations

import pytest
import torch

from analysis.head_effect import masking_effect
from analysis.pruning_report import compare_pruned
from models import load_model
from models.errors import InputError
from tests.tiny_models import make_checkpoint

TEXT = "the cat sat on the mat ."


@pytest.fixture(scope="module", params=["gpt2", "bert-cls", "bert-mlm", "bert"])
def model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    make_checkpoint(request.param, folder, initializer_range=0.3)
    return load_model(str(folder))


def test_only_masked_heads_and_later_layers_change(model):
    effect = masking_effect(model, TEXT, {0: [1, 3]})
    change = effect.attention_change  # (layers, heads)
    n = effect.before.lengths[0]
    assert change[0, 0] == 0 and change[0, 2] == 0                     # other heads of the masked layer: untouched
    for head in (1, 3):                                                # masked heads report zero attention
        assert change[0, head].item() == pytest.approx(effect.before.attentions[0][0, head, :n, :n].abs().mean().item())
    assert (change[1] > 0).all()                                       # the next layer sees a different input
    assert effect.hidden_cosine[0].item() == pytest.approx(1.0)        # embeddings: before any attention
    assert effect.hidden_cosine[1] < 1.0


def test_prediction_is_the_models_own_distribution(model):
    effect = masking_effect(model, TEXT, {1: [0]}, top_k=3)
    if model.task is None:
        assert effect.prediction.empty and effect.kl_divergence is None
        assert effect.what.startswith("final hidden states")
        return
    logits = effect.before.logits[0] if effect.before.logits.dim() == 2 else None
    if model.task == "sequence-classification":
        assert set(effect.prediction["output"]) == {"LABEL_0", "LABEL_1"}
    else:
        position = len(effect.before.tokens[0]) - 1 if model.task == "causal-lm" else len(effect.before.tokens[0]) - 2
        logits = effect.before.logits[0, position]  # the last token; for BERT the last before [SEP]
        assert 3 <= len(effect.prediction) <= 6  # top 3 before and after, without repeats
    probs = logits.double().softmax(-1)
    top = int(probs.argmax())
    assert effect.prediction["before"].iloc[0] == pytest.approx(float(probs[top]), abs=1e-9)
    assert effect.kl_divergence >= 0
    assert (effect.prediction["after"] - effect.prediction["before"] - effect.prediction["change"]).abs().max() < 1e-12


def test_masked_lm_reads_the_mask_position(tmp_path):
    make_checkpoint("bert-mlm", tmp_path, initializer_range=0.3)
    mlm = load_model(str(tmp_path))
    mlm.tokenizer.backend.add_special_tokens(["[MASK]"])  # as real BERT tokenizers do; the tiny one splits "[MASK]"
    effect = masking_effect(mlm, "the cat [MASK] on the mat .", {0: [0]})
    assert effect.what == "token at position 3 ('[MASK]')"


def test_pruning_report_counts_parameters_and_times_both_models(model):
    pruned = model.prune_heads({0: [0, 1], 1: [2]})
    steps = []
    report = compare_pruned(model, pruned, [TEXT, "who was it ?"], repeats=3, progress=lambda f, m: steps.append(f))
    d, dh = model.config.d_model, model.config.d_head
    assert report.parameters_removed == 3 * (4 * d * dh + 3 * dh)
    assert (report.heads_before, report.heads_after) == (8, 5)
    assert report.ms_before > 0 and report.ms_after > 0
    assert report.runs == 4 and len(report.round_ratios) == 2  # 3 rounded up to pairs of rounds: AB, BA, AB, BA
    assert steps == [1 / 5, 2 / 5, 3 / 5, 4 / 5, 1.0]           # one warm-up round, four timed
    # the speed-up is the ratio of the two times shown next to it (issue 18, bug 4), never another estimate
    assert report.speedup == report.ms_before / report.ms_after
    low, high = report.speedup_range
    assert min(report.round_ratios) <= low <= high <= max(report.round_ratios)
    assert report.ms_before_range[0] <= report.ms_before <= report.ms_before_range[1]
    summary = report.summary()
    assert f"{report.speedup:.2f}×" in summary and f"{report.ms_before:.1f} ms before" in summary
    assert f"{report.ms_after:.1f} ms after" in summary
    assert report.tokens == sum(model.run([TEXT, "who was it ?"]).lengths)
    with pytest.raises(InputError, match="repeats must be at least 1"):
        compare_pruned(model, pruned, [TEXT], repeats=0)
