"""Pure comparison helpers: answers, agreement, and the attention summary and profile read from traces."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from analysis.compare import answer_agreement, attention_profile, attention_summary, comparison_table, top_answer


class _Wrapped(dict):
    """A pipeline result as pipelines return it: the answer dict, with `.trace` and `.seconds`."""

    def __init__(self, answer, trace, seconds):
        super().__init__(answer)
        self.trace, self.seconds = trace, seconds


def _uniform(T: int, heads: int = 2) -> torch.Tensor:
    return torch.full((1, heads, T, T), 1.0 / T)


def _on_first(T: int, heads: int = 2) -> torch.Tensor:
    pattern = torch.zeros(1, heads, T, T)
    pattern[..., 0] = 1.0
    return pattern


def test_summary_reads_entropy_and_the_share_on_the_first_position():
    summary = attention_summary(SimpleNamespace(attentions=(_uniform(4), _on_first(4)), encoder_attentions=()))
    assert summary["entropy_first"] == pytest.approx(math.log(4), abs=1e-5)  # uniform over 4 keys
    assert summary["entropy_last"] == pytest.approx(0.0, abs=1e-5)  # all on one key
    assert summary["on_first_position"] == pytest.approx(1.0)


def test_profile_places_layers_by_relative_depth_so_different_depths_line_up():
    results = {"deep": _Wrapped({"label": "a"}, SimpleNamespace(attentions=(_uniform(4),) * 3, encoder_attentions=()), 0.1),
               "shallow": _Wrapped({"label": "a"}, SimpleNamespace(attentions=(_uniform(8), _on_first(8)),
                                                                    encoder_attentions=()), 0.2)}
    profile = attention_profile(results)
    assert list(profile["model"]) == ["deep"] * 3 + ["shallow"] * 2
    assert list(profile["depth"]) == [0.0, 0.5, 1.0, 0.0, 1.0]
    assert profile["entropy"].iloc[3] == pytest.approx(math.log(8), abs=1e-5)
    assert list(profile["on_first_position"].round(3)) == [0.25, 0.25, 0.25, 0.125, 1.0]
    table = comparison_table(results)
    assert list(table["layers"]) == [3, 2] and list(table["latency_ms"]) == pytest.approx([100.0, 200.0])


def test_answers_and_agreement():
    assert top_answer({"text": " hello there "}) == "hello there"
    assert top_answer([{"label": "positive", "score": 0.9}]) == "positive"
    agreement = answer_agreement({"a": "turn off the lights", "b": "turn on the lights", "c": "turn off the lights"})
    assert agreement.loc["a", "c"] == 1.0 and agreement.loc["a", "b"] == pytest.approx(0.75)
