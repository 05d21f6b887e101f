"""Per-head attention statistics and rollout: analytic patterns, then a tiny real model."""
from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import entropy as scipy_entropy

from analysis.attention import (MEAN_OF_LAYER, head_pattern, head_statistics, rollout_per_layer,
                                special_token_mask, top_k_attention)
from analysis.rollout import attention_rollout
from models import load_model
from models.errors import HeadIndexError, InputError
from models.trace import Trace
from tests.tiny_models import make_checkpoint


def fake_trace(layers: list[torch.Tensor], tokens: list[str], head_ids: list[list[int]] | None = None) -> Trace:
    """A Trace around hand-made patterns [(H, n, n)], for checks with known answers."""
    n = len(tokens)
    return Trace(tokens=[tokens], input_ids=torch.zeros(1, n, dtype=torch.long), attention_mask=torch.ones(1, n, dtype=torch.long),
                 hidden_states=(torch.zeros(1, n, 4),) * (len(layers) + 1), attentions=tuple(a[None] for a in layers),
                 resid_final=torch.zeros(1, n, 4), head_ids=head_ids or [list(range(a.shape[0])) for a in layers])


N = 6
TOKENS = ["[CLS]", "a", "b", "c", "d", "[SEP]"]
PREVIOUS = torch.diag(torch.ones(N - 1), -1)  # query q -> key q-1 ...
PREVIOUS[0, 0] = 1.0                          # ... and the first token to itself
UNIFORM = torch.full((N, N), 1.0 / N)
TO_CLS = torch.zeros(N, N)
TO_CLS[:, 0] = 1.0


@pytest.fixture(scope="module")
def analytic():
    return head_statistics(fake_trace([torch.stack([PREVIOUS, UNIFORM, TO_CLS])], TOKENS), special_tokens={"[CLS]", "[SEP]"})


def test_previous_token_head(analytic):
    row = analytic.iloc[0]
    assert row["to_previous"] == pytest.approx(1.0)
    assert row["entropy"] == pytest.approx(0.0, abs=1e-9)
    assert row["mean_distance"] == pytest.approx((N - 1) / N)  # every query but the first is 1 away
    assert row["to_self"] == pytest.approx(1 / N)
    assert row["to_special"] == pytest.approx(2 / N)  # queries 0 and 1 look at [CLS]; none reaches [SEP]


def test_uniform_head(analytic):
    row = analytic.iloc[1]
    assert row["entropy"] == pytest.approx(math.log(N))
    assert row["entropy_normalized"] == pytest.approx(1.0)
    assert row["to_special"] == pytest.approx(2 / N)
    assert row["max_weight"] == pytest.approx(1 / N)
    expected_distance = sum(abs(q - k) for q in range(N) for k in range(N)) / N / N
    assert row["mean_distance"] == pytest.approx(expected_distance)


def test_cls_head(analytic):
    row = analytic.iloc[2]
    assert row["to_special"] == pytest.approx(1.0)
    assert row["mean_distance"] == pytest.approx(sum(range(N)) / N)
    assert list(analytic["head"]) == [0, 1, 2] and set(analytic["layer"]) == {0}


def test_causal_normalization_divides_by_the_keys_each_query_may_see():
    causal_uniform = torch.tril(torch.ones(N, N))
    causal_uniform = causal_uniform / causal_uniform.sum(-1, keepdim=True)
    stats = head_statistics(fake_trace([causal_uniform[None]], TOKENS), causal=True)
    assert stats.loc[0, "entropy_normalized"] == pytest.approx(1.0)
    assert stats.loc[0, "entropy"] == pytest.approx(sum(math.log(q + 1) for q in range(N)) / N)
    bidirectional = head_statistics(fake_trace([causal_uniform[None]], TOKENS), causal=False)
    assert bidirectional.loc[0, "entropy_normalized"] < 0.9


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats-bert")
    make_checkpoint("bert", folder)
    return load_model(str(folder))


def test_statistics_of_a_real_model_match_a_plain_loop(tiny_bert):
    trace = tiny_bert.run("the cat sat on the mat .")
    stats = head_statistics(trace, special_tokens=tiny_bert.tokenizer.special.values())
    assert len(stats) == tiny_bert.n_layers * tiny_bert.n_heads
    tokens = trace.tokens[0]
    special = [t in ("[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]") for t in tokens]
    for _, row in stats.sample(3, random_state=0).iterrows():
        pattern = trace.attentions[int(row["layer"])][0, int(row["head"])].double()  # (n, n)
        n = pattern.shape[0]
        entropies = [scipy_entropy(pattern[q].numpy()) for q in range(n)]
        assert row["entropy"] == pytest.approx(sum(entropies) / n, rel=1e-6)
        assert row["to_special"] == pytest.approx(
            sum(float(pattern[q, k]) for q in range(n) for k in range(n) if special[k]) / n, rel=1e-6)
        assert row["to_previous"] == pytest.approx(sum(float(pattern[q, q - 1]) for q in range(1, n)) / (n - 1), rel=1e-6)
        assert row["mean_distance"] == pytest.approx(
            sum(float(pattern[q, k]) * abs(q - k) for q in range(n) for k in range(n)) / n, rel=1e-6)


def test_pruned_model_keeps_original_head_numbers(tiny_bert):
    pruned = tiny_bert.prune_heads({1: [0, 2]})
    trace = pruned.run("the cat sat .")
    stats = head_statistics(trace)
    assert list(stats[stats.layer == 1]["head"]) == [1, 3]
    full = head_statistics(tiny_bert.run("the cat sat ."))
    # layer 0 is untouched by pruning layer 1, so its statistics are identical
    torch.testing.assert_close(torch.tensor(stats[stats.layer == 0].iloc[:, 2:].values),
                               torch.tensor(full[full.layer == 0].iloc[:, 2:].values))
    torch.testing.assert_close(head_pattern(trace, 1, 3), trace.attentions[1][0, 1])
    with pytest.raises(HeadIndexError, match="no head 0"):
        head_pattern(trace, 1, 0)


def test_head_pattern_mean_and_errors(tiny_bert):
    trace = tiny_bert.run(["the cat sat on the mat .", "a dog ."])
    mean = head_pattern(trace, 0, MEAN_OF_LAYER, example=1)
    n = trace.lengths[1]
    assert mean.shape == (n, n)  # padding removed
    torch.testing.assert_close(mean.sum(-1), torch.ones(n))
    torch.testing.assert_close(mean, trace.attentions[0][1, :, :n, :n].mean(0))
    with pytest.raises(HeadIndexError):
        head_pattern(trace, 7, 0)
    with pytest.raises(InputError):
        head_pattern(trace, 0, 0, example=5)


def test_rollout_per_layer_ends_at_the_full_rollout(tiny_bert):
    trace = tiny_bert.run("the cat sat on the mat .")
    per_layer = rollout_per_layer([a[0] for a in trace.attentions])
    assert per_layer.shape[0] == tiny_bert.n_layers
    torch.testing.assert_close(per_layer[-1], attention_rollout(trace.attentions)[0])
    torch.testing.assert_close(per_layer[0], attention_rollout(trace.attentions[:1])[0])
    torch.testing.assert_close(per_layer.sum(-1), torch.ones_like(per_layer.sum(-1)))


def test_top_k_keeps_the_largest_weights():
    torch.manual_seed(0)
    pattern = torch.softmax(torch.randn(3, 7, 7), -1)  # (H, n, n)
    sparse = top_k_attention(pattern, 2)
    assert sparse.keys.shape == (3, 7, 2)
    torch.testing.assert_close(sparse.weights[..., 0], pattern.amax(-1))
    torch.testing.assert_close(sparse.dropped_mass, 1 - sparse.weights.sum(-1))
    full = top_k_attention(pattern, 99)  # k larger than n keeps everything
    dense = torch.zeros_like(pattern).scatter(-1, full.keys, full.weights)
    torch.testing.assert_close(dense, pattern)
    with pytest.raises(InputError):
        top_k_attention(pattern, 0)


def test_special_token_mask():
    assert special_token_mask(TOKENS, {"[CLS]", "[SEP]"}).tolist() == [True, False, False, False, False, True]
