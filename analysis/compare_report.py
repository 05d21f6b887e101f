"""What a comparison reports beside the answers: each model's timing (load, first call, steady state), the word
error rate of transcripts against a reference, the inputs a model cut short, and one export table that carries
the full input, the agreement matrix and the errors of the models that failed.

Timing, honestly. The answer shown is the *first* call's: nothing runs only to be thrown away. Its time includes
whatever the first call of a model pays once (allocations, lazy imports, caches filling). A model that answers
fast is then called again, up to `REPEATS` times while the repeats fit in `REPEAT_BUDGET_SECONDS`, and the
median of those repeats is its steady-state time, the latency shown. A model that generates (text generation,
speech recognition: `model.can_generate`) is called once unless the caller asks for repeats: the latency shown
is then that first call's, and says so.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from models.errors import WorkbenchError

from .compare import answer_agreement
from .sweeps.evaluate import word_errors

REPEATS = 5                    # steady-state calls after the first, at most
REPEAT_BUDGET_SECONDS = 1.0    # ... and no more repeat time than this (a slow model is not repeated)
GENERATION_REPEATS = 3         # steady-state calls of a generating model, when asked for
FIRST_CALL = "first call"
TIMING_COLUMNS = ["load_ms", "first_call_ms", "steady_ms", "steady_min_ms", "steady_max_ms", "repeats",
                  "latency_ms", "timing"]


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of one model in one comparison."""
    load_seconds: float                      # getting the model and its pipeline (near 0 when already loaded)
    first_seconds: float                     # the first call: its answer is the one shown
    repeat_seconds: tuple[float, ...] = ()   # each further call, for the steady state; empty if not repeated

    @property
    def steady_seconds(self) -> float:
        """Median of the repeats (NaN when the model was called once)."""
        return statistics.median(self.repeat_seconds) if self.repeat_seconds else math.nan

    @property
    def latency_seconds(self) -> float:
        """The latency a comparison shows: the steady state when measured, else the first call."""
        return self.steady_seconds if self.repeat_seconds else self.first_seconds

    @property
    def shown(self) -> str:
        """Which time `latency_seconds` is, in words."""
        n = len(self.repeat_seconds)
        if not n:
            return FIRST_CALL
        return f"median of {n} repeat{'s' if n > 1 else ''}"  # the calls after the first


def timed_load(load: Callable[[], Any], clock: Callable[[], float] = time.perf_counter) -> tuple[Any, float]:
    """(what ``load()`` gives, the seconds it took): a model and its pipeline."""
    start = clock()
    loaded = load()
    return loaded, clock() - start


def repeat_plan(model: Any, repeat_generation: bool = False) -> tuple[int, float]:
    """(repeats, budget seconds) for a model: a model that generates is called once, unless asked, then
    `GENERATION_REPEATS` more times whatever they take; any other model `REPEATS` times within the budget."""
    if model.can_generate:
        return (GENERATION_REPEATS, math.inf) if repeat_generation else (0, 0.0)
    return REPEATS, REPEAT_BUDGET_SECONDS


def timed_run(pipe: Callable[[Any], Any], source: Any, repeats: int = REPEATS,
              budget_seconds: float = REPEAT_BUDGET_SECONDS, load_seconds: float = 0.0,
              clock: Callable[[], float] = time.perf_counter) -> tuple[Any, Timing]:
    """(the first call's result, its Timing) of ``pipe(source)``.

    After the first call, up to ``repeats`` more, each only while the repeat time so far plus the last call's
    time stays within ``budget_seconds`` (so a call slower than the budget is not repeated). The repeats'
    results are dropped at once (their traces can be large).
    """
    start = clock()
    result = pipe(source)
    last = clock() - start
    first, spent, again = last, 0.0, []
    while len(again) < repeats and spent + last <= budget_seconds:
        begin = clock()
        pipe(source)
        last = clock() - begin
        spent += last
        again.append(last)
    return result, Timing(load_seconds, first, tuple(again))


def run_comparison(loaders: Mapping[str, Callable[[], Callable[[Any], Any]]], source: Any,
                   repeat_generation: bool = False, clock: Callable[[], float] = time.perf_counter,
                   progress: Callable[[float, str], None] | None = None
                   ) -> tuple[dict[str, Any], dict[str, Timing], dict[str, str]]:
    """(results, timings, errors) of every pipeline on ``source``, in the order given; ``loaders`` maps a name to
    what gives that pipeline. A model that fails (to load, or on this input) is an error message, and the others
    run on. Each is timed by `timed_load` and `timed_run` under `repeat_plan`. ``progress(fraction, message)`` is
    called before each model and at the end; it may stop the comparison by raising (``except Exception`` below
    does not catch Streamlit's rerun, a BaseException).
    """
    results, timings, errors = {}, {}, {}
    for i, (name, load) in enumerate(loaders.items()):
        if progress is not None:
            progress(i / len(loaders), f"{name}…")
        try:
            pipe, load_seconds = timed_load(load, clock)
            repeats, budget = repeat_plan(pipe.model, repeat_generation)
            results[name], timings[name] = timed_run(pipe, source, repeats, budget, load_seconds, clock)
        except WorkbenchError as error:
            errors[name] = str(error)
        except Exception as error:  # one model failing must not take the comparison down
            errors[name] = f"{type(error).__name__}: {error}"
    if progress is not None:  # a caller stopping here drops the whole comparison, the last model included
        progress(1.0, f"{len(loaders)} of {len(loaders)} done")
    return results, timings, errors


def timing_frame(timings: Mapping[str, Timing]) -> pd.DataFrame:
    """One row per model, milliseconds: load, first call, steady-state median (and the repeats' range), how many
    repeats, the latency shown and which time it is."""
    rows = []
    for name, t in timings.items():
        rows.append({"model": name, "load_ms": 1000 * t.load_seconds, "first_call_ms": 1000 * t.first_seconds,
                     "steady_ms": 1000 * t.steady_seconds,
                     "steady_min_ms": 1000 * min(t.repeat_seconds) if t.repeat_seconds else math.nan,
                     "steady_max_ms": 1000 * max(t.repeat_seconds) if t.repeat_seconds else math.nan,
                     "repeats": len(t.repeat_seconds), "latency_ms": 1000 * t.latency_seconds, "timing": t.shown})
    return pd.DataFrame(rows, columns=["model", *TIMING_COLUMNS])


def with_timings(table: pd.DataFrame, timings: Mapping[str, Timing]) -> pd.DataFrame:
    """`comparison_table` with its latency replaced by the measured timing columns (same rows, same order)."""
    timed = timing_frame(timings)
    out = table.drop(columns=[c for c in TIMING_COLUMNS if c in table]).merge(timed, on="model", how="left")
    return out


def is_transcript(result: Any) -> bool:
    """A speech recogniser's result ({"text": ...}), the kind of answer a reference transcript scores."""
    return isinstance(result, dict) and "text" in result


def reference_wer(answers: Mapping[str, str], reference: str) -> pd.DataFrame:
    """Word error rate of each answer against ``reference``: word edits / reference words, on lower-cased words
    without punctuation (`analysis.sweeps.evaluate.word_errors`, the dataset sweep's own measure)."""
    rows = []
    for name, answer in answers.items():
        edits, words = word_errors(reference, answer)
        rows.append({"model": name, "word_errors": edits, "reference_words": words,
                     "wer": edits / words if words else math.nan})
    return pd.DataFrame(rows, columns=["model", "word_errors", "reference_words", "wer"])


def with_wer(table: pd.DataFrame, wer: pd.DataFrame | None) -> pd.DataFrame:
    """``table`` with a "wer" column after the score (NaN for answers that are not transcripts), if ``wer`` has rows."""
    if wer is None or not len(wer):
        return table
    out = table.drop(columns=[c for c in ("wer",) if c in table]).merge(wer[["model", "wer"]], on="model", how="left")
    columns = [c for c in out.columns if c != "wer"]
    at = columns.index("score") + 1 if "score" in columns else len(columns)
    return out[columns[:at] + ["wer"] + columns[at:]]


def truncation_warnings(results: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per model, what its run warned about (an input cut to a token limit), from the result's trace."""
    out = {}
    for name, result in results.items():
        trace = getattr(result, "trace", None)
        said = list(getattr(trace, "warnings", None) or [])  # worded by the core, one sentence each
        if said:
            out[name] = said
    return out


AGREEMENT_PREFIX = "agreement with "


def export_frame(table: pd.DataFrame, order: Sequence[str], errors: Mapping[str, str], input_text: str,
                 agreement: pd.DataFrame | None = None, warnings: Mapping[str, Sequence[str]] | None = None,
                 reference: str | None = None, wer: pd.DataFrame | None = None) -> pd.DataFrame:
    """Everything a comparison showed, one row per model in ``order``, the failed ones included.

    Columns: model, input (in full), answer and score, the word error rate against ``reference`` (when given),
    timing, the attention summary, warnings, error, then one column per answering model,
    "agreement with <model>", the agreement matrix (1 - word error rate between answers) row by row.
    """
    warnings = warnings or {}
    frame = table.copy()
    frame["input"] = input_text
    if reference is not None and wer is not None and len(wer):
        frame["reference"] = reference
        frame = with_wer(frame, wer)
    failed = pd.DataFrame({"model": [m for m in order if m in errors and m not in set(frame["model"])]})
    failed["input"] = input_text
    frame = pd.concat([frame, failed], ignore_index=True) if len(failed) else frame
    frame["warnings"] = [" ".join(warnings.get(m, [])) for m in frame["model"]]
    frame["error"] = [errors.get(m, "") for m in frame["model"]]
    rank = {m: i for i, m in enumerate(order)}
    frame = frame.sort_values("model", key=lambda s: s.map(lambda m: rank.get(m, len(rank))), kind="stable")
    first = ["model", "input", "answer", "score", *(["reference", "wer"] if "wer" in frame else [])]
    frame = frame[first + [c for c in frame.columns if c not in first]].reset_index(drop=True)
    if agreement is not None and len(agreement):
        wide = agreement.add_prefix(AGREEMENT_PREFIX)
        frame = frame.merge(wide, left_on="model", right_index=True, how="left")
    return frame


def comparison_agreement(table: pd.DataFrame) -> pd.DataFrame:
    """The agreement matrix of a comparison's answers (models that failed have no answer and no row)."""
    return answer_agreement(dict(zip(table["model"], table["answer"])))
