"""Head surgery on the real embedded checkpoints: SmolLM2's grouped-query attention and the sentiment MiniLM."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from analysis.head_importance import compute_gradient_importance
from analysis.metrics import evaluate, make_eval_set, read_labelled_csv
from models import load_model

pytestmark = pytest.mark.slow
SENTIMENT = Path(__file__).resolve().parents[2] / "sample_data" / "sentiment.csv"
TEXTS = ["The animal didn't cross the street because it was too tired.", "Paris is the capital of"]


@pytest.fixture(scope="module")
def smollm2():
    return load_model("smollm2")


def test_smollm2_pruned_equals_masked_with_whole_groups_and_layers(smollm2, tmp_path):
    model = smollm2
    assert (model.n_heads, model.config.n_kv_heads) == (9, 3)  # groups of three query heads share a key/value head
    spec = {0: [0, 1, 2], 5: [4], 29: list(range(9))}           # a whole group, one head, a whole layer
    pruned = model.prune_heads(spec)
    attn0, attn5 = pruned.network.blocks[0].attn, pruned.network.blocks[5].attn
    assert (attn0.n_heads, attn0.n_kv_heads) == (6, 2)          # the group's key/value head went with it
    assert (attn5.n_heads, attn5.n_kv_heads) == (8, 3)          # one head of a group: its key/value head stays
    assert pruned.network.blocks[29].attn.n_heads == 0
    with model.mask_heads(spec):
        masked = model.run(TEXTS)
    ours = pruned.run(TEXTS)
    real = masked.attention_mask.bool()
    # SmolLM2's residual stream carries a few huge activations (~2.5e4): float32 summation order alone
    # moves them by ~1e-3, so each layer is compared relative to its own largest value
    for a, b in zip(ours.hidden_states, masked.hidden_states):
        assert (a[real] - b[real]).abs().max() <= 1e-6 * b[real].abs().max() + 1e-4
    # logits: 1e-4, the size of the 8e-5 by which this model's own capture and fast paths differ (measured)
    torch.testing.assert_close(ours.logits[real], masked.logits[real], atol=1e-4, rtol=0)
    pruned.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.config.pruned_heads == {("decoder", k): v for k, v in spec.items()} and again.head_ids() == pruned.head_ids()
    assert torch.equal(again.run(TEXTS[1]).logits, pruned.run(TEXTS[1]).logits)


def test_sentiment_minilm_gradient_scores_and_masking_the_least_important():
    model = load_model("minilm-sentiment")
    texts, labels = read_labelled_csv(SENTIMENT, split="train")
    scoring = make_eval_set(model, texts[:64], labels[:64])
    test_texts, test_labels = read_labelled_csv(SENTIMENT, split="test")
    held_out = make_eval_set(model, test_texts, test_labels)
    importance = compute_gradient_importance(model, scoring)
    assert importance.scores.shape == (6, 12) and torch.isfinite(importance.scores).all()
    norms = importance.scores.pow(2).sum(1).sqrt()
    torch.testing.assert_close(norms, torch.ones(6, dtype=torch.float64), atol=1e-9, rtol=0)
    base = evaluate(model, held_out)
    assert base.accuracy > 0.8  # the shipped classifier works on held-out sentences
    least, most = importance.least_important(7), importance.to_frame().head(7)
    with model.mask_heads(least):
        without_least = evaluate(model, held_out)
    with model.mask_heads(_as_spec(most)):
        without_most = evaluate(model, held_out)
    # removing the 10% least important heads costs less loss than removing the 10% most important
    assert without_least.loss - base.loss < without_most.loss - base.loss


def _as_spec(frame) -> dict[int, list[int]]:
    spec: dict[int, list[int]] = {}
    for layer, head in zip(frame["layer"], frame["head"]):
        spec.setdefault(int(layer), []).append(int(head))
    return spec
