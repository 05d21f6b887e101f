"""What a comparison reports beside the answers: timing on a scripted clock, WER against a reference, truncation
notes, and the export table with the full input, the agreement matrix and the failed models' errors."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pandas as pd
import pytest

from analysis.compare import answer_agreement
from analysis.compare_report import (GENERATION_REPEATS, REPEAT_BUDGET_SECONDS, REPEATS, Timing, export_frame,
                                     reference_wer, repeat_plan, run_comparison, timed_load, timed_run,
                                     timing_frame, truncation_warnings, with_timings, with_wer)
from analysis.sweeps.evaluate import word_errors
from models.errors import InputError


class ScriptedClock:
    """A clock that moves only when a scripted call says how long it took."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def scripted_pipe(clock: ScriptedClock, seconds: list[float]):
    """A pipeline whose n-th call takes seconds[n] on the clock and answers {"call": n}; calls are counted."""
    calls: list[object] = []

    def pipe(source):
        clock.now += seconds[len(calls)]
        calls.append(source)
        return {"call": len(calls) - 1}

    return pipe, calls


def test_the_answer_is_the_first_call_and_the_steady_state_is_the_median_of_the_repeats():
    clock = ScriptedClock()
    pipe, calls = scripted_pipe(clock, [0.050, 0.012, 0.010, 0.030, 0.011, 0.013])
    result, timing = timed_run(pipe, "x", repeats=5, budget_seconds=1.0, load_seconds=2.5, clock=clock)
    assert result == {"call": 0} and len(calls) == 6  # the first call's answer; no warm-up run thrown away
    assert timing.first_seconds == pytest.approx(0.050)
    assert timing.repeat_seconds == pytest.approx((0.012, 0.010, 0.030, 0.011, 0.013))
    assert timing.steady_seconds == pytest.approx(0.012) and timing.latency_seconds == pytest.approx(0.012)
    assert timing.shown == "median of 5 repeats" and timing.load_seconds == 2.5
    row = timing_frame({"m": timing}).iloc[0]
    assert (row["load_ms"], row["first_call_ms"], row["steady_ms"]) == pytest.approx((2500.0, 50.0, 12.0))
    assert (row["steady_min_ms"], row["steady_max_ms"], row["repeats"]) == pytest.approx((10.0, 30.0, 5))
    assert row["latency_ms"] == pytest.approx(12.0) and row["timing"] == timing.shown


def test_repeats_stop_at_the_budget_and_a_slow_first_call_is_not_repeated():
    clock = ScriptedClock()
    pipe, calls = scripted_pipe(clock, [0.4, 0.4, 0.4, 0.4, 0.4])
    _, timing = timed_run(pipe, "x", repeats=5, budget_seconds=1.0, clock=clock)
    assert len(timing.repeat_seconds) == 2 and len(calls) == 3  # 0.4 + 0.4 fit in 1 s; a third would not
    assert timing.shown == "median of 2 repeats"
    clock = ScriptedClock()
    pipe, calls = scripted_pipe(clock, [1.5, 1.5])
    _, timing = timed_run(pipe, "x", repeats=5, budget_seconds=1.0, clock=clock)
    assert len(calls) == 1 and timing.shown == "first call" and timing.latency_seconds == pytest.approx(1.5)
    assert math.isnan(timing.steady_seconds)


def test_generation_runs_once_unless_asked_and_then_its_repeats_are_timed_whatever_they_take():
    generating, answering = SimpleNamespace(can_generate=True), SimpleNamespace(can_generate=False)
    assert repeat_plan(generating) == (0, 0.0)
    assert repeat_plan(generating, repeat_generation=True) == (GENERATION_REPEATS, math.inf)
    assert repeat_plan(answering) == (REPEATS, REPEAT_BUDGET_SECONDS)
    clock = ScriptedClock()
    pipe, calls = scripted_pipe(clock, [0.9, 0.7])
    result, timing = timed_run(pipe, "prompt", *repeat_plan(generating), clock=clock)
    assert result == {"call": 0} and calls == ["prompt"]  # exactly one generation: no warm-up, no repeat
    assert timing.shown == "first call" and timing.latency_seconds == pytest.approx(0.9)
    clock = ScriptedClock()
    pipe, calls = scripted_pipe(clock, [2.0, 3.0, 1.0, 2.5])
    _, timing = timed_run(pipe, "prompt", *repeat_plan(generating, True), clock=clock)
    assert len(calls) == 1 + GENERATION_REPEATS and timing.steady_seconds == pytest.approx(2.5)


def test_load_is_timed_on_the_same_clock():
    clock = ScriptedClock()

    def load():
        clock.now += 3.25
        return "pipe"

    assert timed_load(load, clock=clock) == ("pipe", pytest.approx(3.25))


def test_with_timings_replaces_the_pipelines_own_latency():
    table = pd.DataFrame({"model": ["a", "b"], "answer": ["x", "y"], "score": [0.9, None], "latency_ms": [1.0, 2.0]})
    out = with_timings(table, {"b": Timing(0.0, 0.5), "a": Timing(0.1, 0.02, (0.01, 0.03, 0.02))})
    assert list(out["model"]) == ["a", "b"]
    assert list(out["latency_ms"]) == pytest.approx([20.0, 500.0])
    assert list(out["timing"]) == ["median of 3 repeats", "first call"]


def test_word_error_rate_against_the_reference_is_the_sweeps_own():
    reference = "the quick brown fox"
    wer = reference_wer({"good": "The quick brown fox.", "poor": "the quick brown box jumps"}, reference)
    assert list(wer["model"]) == ["good", "poor"] and list(wer["wer"]) == pytest.approx([0.0, 0.5])
    edits, words = word_errors(reference, "the quick brown box jumps")
    assert (wer["word_errors"][1], wer["reference_words"][1]) == (edits, words) == (2, 4)
    table = pd.DataFrame({"model": ["label", "poor"], "answer": ["yes", "x"], "score": [0.8, None], "latency_ms": 1.0})
    shown = with_wer(table, wer)
    assert list(shown.columns) == ["model", "answer", "score", "wer", "latency_ms"]
    assert math.isnan(shown["wer"][0]) and shown["wer"][1] == pytest.approx(0.5)  # a label is not a transcript


def test_truncation_warnings_come_from_the_traces_as_the_core_words_them():
    said = "The text has 80 tokens; truncated to the model's limit of 64 tokens."
    long = SimpleNamespace(trace=SimpleNamespace(warnings=[said]))
    short = SimpleNamespace(trace=SimpleNamespace(warnings=[]))
    assert truncation_warnings({"a": long, "b": short, "c": {}}) == {"a": [said]}


def test_the_export_carries_the_full_input_the_agreement_matrix_and_the_errors():
    text = "word " * 200
    table = pd.DataFrame({"model": ["a", "b"], "input": [text[:40]] * 2, "answer": ["turn off the lights",
                                                                                    "turn on the lights"],
                          "score": [None, None], "latency_ms": [5.0, 7.0]})
    agreement = answer_agreement(dict(zip(table["model"], table["answer"])))
    wer = reference_wer(dict(zip(table["model"], table["answer"])), "turn off the lights")
    frame = export_frame(table, ["a", "broken", "b"], {"broken": "InputError: no head"}, text, agreement,
                         {"b": ["The input has 80 tokens; truncated."]}, "turn off the lights", wer)
    assert list(frame["model"]) == ["a", "broken", "b"]  # the order picked, the failed model in its place
    assert list(frame["input"]) == [text] * 3  # in full
    assert list(frame["error"]) == ["", "InputError: no head", ""]
    assert list(frame["warnings"]) == ["", "", "The input has 80 tokens; truncated."]
    assert list(frame.columns[:6]) == ["model", "input", "answer", "score", "reference", "wer"]
    assert frame["wer"][0] == 0.0 and frame["wer"][2] == pytest.approx(0.25) and math.isnan(frame["wer"][1])
    assert frame["agreement with a"].tolist()[::2] == [1.0, 0.75] and frame["agreement with b"][0] == 0.75
    assert math.isnan(frame["agreement with a"][1])  # a failed model agrees with nobody


def test_run_comparison_times_each_model_and_keeps_going_past_one_that_fails():
    clock = ScriptedClock()
    answering, answer_calls = scripted_pipe(clock, [0.01] * 6)
    answering.model = SimpleNamespace(can_generate=False)
    generating, generation_calls = scripted_pipe(clock, [0.5] * 8)
    generating.model = SimpleNamespace(can_generate=True)

    def broken():
        raise InputError("fill-mask needs a masked-language-model head")

    def crashing():
        raise RuntimeError("out of memory")

    steps = []
    loaders = {"gen": lambda: generating, "bad": broken, "ans": lambda: answering, "crash": crashing}
    results, timings, errors = run_comparison(loaders, "x", clock=clock, progress=lambda f, t: steps.append((f, t)))
    assert list(results) == ["gen", "ans"] and len(generation_calls) == 1 and len(answer_calls) == 1 + REPEATS
    assert timings["gen"].shown == "first call" and timings["ans"].shown == f"median of {REPEATS} repeats"
    assert errors == {"bad": "fill-mask needs a masked-language-model head", "crash": "RuntimeError: out of memory"}
    assert steps == [(0.0, "gen…"), (0.25, "bad…"), (0.5, "ans…"), (0.75, "crash…"), (1.0, "4 of 4 done")]
    _, _, _ = run_comparison({"gen": lambda: generating}, "x", repeat_generation=True, clock=clock)
    assert len(generation_calls) == 1 + 1 + GENERATION_REPEATS
