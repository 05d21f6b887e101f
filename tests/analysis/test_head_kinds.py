"""Head kinds on hand-made patterns whose answer is known: a previous-token, a first-token and an induction head."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from analysis.head_kinds import attention_between, find_token, head_kind_scores, repeated_random_tokens, top_heads
from models.errors import InputError

L, OFFSET = 5, 1
N = OFFSET + 2 * L


def one_hot_rows(keys: list[int]) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(keys), N).float()  # (N, N)


def fake_trace() -> SimpleNamespace:
    previous = one_hot_rows([max(q - 1, 0) for q in range(N)])
    first = one_hot_rows([0] * N)
    induction = one_hot_rows([q - L + 1 if q >= OFFSET + L else 0 for q in range(N)])
    pattern = torch.stack([previous, first, induction])[None]  # (1, 3, N, N)
    return SimpleNamespace(attentions=(pattern,), tokens=[[str(i) for i in range(N)]], lengths=[N], head_ids=[[0, 1, 2]])


def test_each_kind_finds_its_head():
    scores = head_kind_scores(fake_trace(), L, OFFSET)
    assert top_heads(scores, "previous_token", 1)[0][:2] == (0, 0)
    assert top_heads(scores, "first_token", 1)[0][:2] == (0, 1)
    assert top_heads(scores, "induction", 1)[0][:2] == (0, 2)
    assert scores.loc[2, "induction"] == pytest.approx(1.0) and scores.loc[0, "induction"] == pytest.approx(0.0)
    assert scores.loc[0, "previous_token"] == pytest.approx(1.0)


def test_a_trace_of_another_length_is_refused():
    with pytest.raises(InputError):
        head_kind_scores(fake_trace(), L + 1, OFFSET)


def test_repeated_tokens_repeat_and_skip_specials():
    ids = repeated_random_tokens(100, 8, seed=3, prefix=[7], skip=[1, 2, 3])
    assert ids.shape == (1, 17) and int(ids[0, 0]) == 7
    assert torch.equal(ids[0, 1:9], ids[0, 9:]) and not {1, 2, 3} & set(ids[0, 1:].tolist())
    assert torch.equal(ids, repeated_random_tokens(100, 8, seed=3, prefix=[7], skip=[1, 2, 3]))  # seeded


def test_attention_between_and_find_token():
    trace = fake_trace()
    between = attention_between(trace, 4, 3)
    assert between["weight"].tolist() == [1.0, 0.0, 0.0]
    assert find_token(["[CLS]", "Ġthe", "ĠAnimal", "it"], "animal") == 2
    with pytest.raises(InputError):
        find_token(["a"], "b")
