"""Dataset head importance is the mean of per-batch scores; the dataset pruning curve is the in-memory one
plus a random baseline; attribution aggregates per token; an interrupted sweep resumes to the same file."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import models
from analysis.attribution import attribute_text
from analysis.head_importance import compute_gradient_importance, normalize_per_layer
from analysis.metrics import make_eval_set
from analysis.pruning_curve import compute_pruning_curve
from analysis.sweeps import (AttributionSweep, ColumnMap, EvaluateSweep, HeadImportanceSweep, PruningCurveSpec,
                             SweepCancelled, read_dataset, read_result, run_sweep, sweep_pruning_curve)
from analysis.sweeps.results import read_sections

MAP = ColumnMap(text="text", label="label")


def test_dataset_importance_is_the_mean_of_the_per_batch_scores(sweep_models, small_sentiment, tmp_path):
    data = read_dataset(small_sentiment, MAP)
    name = sweep_models["classifier"]
    result = run_sweep(HeadImportanceSweep(model=name, batch_size=8), data, shard_size=20, out=tmp_path / "h.parquet")
    model = models.load_model(name)
    texts, labels = list(data.frame["text"]), list(data.frame["label"])
    per_batch, sizes = [], []
    starts = [shard + b for shard in range(0, 60, 20) for b in range(0, 20, 8)]  # every shard: 8 + 8 + 4 rows
    for start in starts:
        end = min(start + 8, (start // 20 + 1) * 20)
        batch = make_eval_set(model, texts[start:end], labels[start:end], batch_size=8)
        per_batch.append(compute_gradient_importance(model, batch, normalize=False).scores)
        sizes.append(end - start)
    assert sizes == [8, 8, 4] * 3
    mean = sum(s * n for s, n in zip(per_batch, sizes)) / sum(sizes)  # (n_layers, n_heads)
    table = result["head_importance"]
    got_raw = torch.zeros_like(mean)
    got = torch.zeros_like(mean)
    for row in table.itertuples():
        got_raw[row.layer, row.head], got[row.layer, row.head] = row.raw, row.score
    torch.testing.assert_close(got_raw, mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(got, normalize_per_layer(mean), rtol=0, atol=1e-10)
    assert list(table["rank"]) == list(range(1, 9)) and result["summary"]["n_examples"][0] == 60
    assert read_result(tmp_path / "h.parquet")["head_importance"].equals(table)
    assert not (tmp_path / "h.parquet.parts").exists()  # shards are removed once the result is written


def test_pruning_curve_follows_the_in_memory_curve_and_adds_a_random_baseline(sweep_models, small_sentiment):
    data = read_dataset(small_sentiment, ColumnMap(text="text"))
    data = type(data)(frame=data.frame.head(24), columns=data.columns, source=data.source, format=data.format)
    name = sweep_models["lm"]
    spec = PruningCurveSpec(model=name, step_fraction=0.25, max_fraction=0.75, seeds=(0, 1))
    result = sweep_pruning_curve(spec, data, shard_size=64)
    model = models.load_model(name)
    reference = compute_pruning_curve(model, make_eval_set(model, list(data.frame["text"])), step_fraction=0.25,
                                      max_fraction=0.75).table
    curve = result["curve"]
    ours = curve[curve["order"] == "importance"].reset_index(drop=True)
    assert list(ours["heads_pruned"]) == list(reference["heads_pruned"]) == [0, 2, 4, 6]
    assert list(ours["pruned_now"]) == list(reference["pruned_now"])
    assert ours["loss"].tolist() == pytest.approx(reference["loss"].tolist(), abs=1e-6)  # float32 mean vs float64 sum
    random = curve[curve["order"] == "random"]
    assert sorted(set(random["seed"])) == [0, 1] and len(random) == 2 * 4
    assert random[random["step"] == 0]["loss"].tolist() == pytest.approx([ours["loss"][0]] * 2)
    assert random[random["seed"] == 0]["pruned_now"].tolist() != random[random["seed"] == 1]["pruned_now"].tolist()
    spread = result["random_spread"].set_index("step")
    for step in (1, 2, 3):
        losses = random[random["step"] == step]["loss"]
        assert spread.loc[step, "loss_mean"] == pytest.approx(losses.mean())
        assert spread.loc[step, "loss_std"] == pytest.approx(losses.std(ddof=0))
        assert spread.loc[step, "loss_min"] == losses.min() and spread.loc[step, "seeds"] == 2


def test_attribution_aggregates_per_token(sweep_models, small_sentiment):
    data = read_dataset(small_sentiment, MAP)
    data = type(data)(frame=data.frame.head(12), columns=data.columns, source=data.source, format=data.format)
    name = sweep_models["classifier"]
    result = run_sweep(AttributionSweep(model=name, method="saliency", target="label"), data, shard_size=5)
    model = models.load_model(name)
    sums: dict[str, list[float]] = {}
    for text, label in zip(data.frame["text"], data.frame["label"]):
        report = attribute_text(model, text, methods=["saliency"], target=label)
        for token, score, special in zip(report.units, report.results["saliency"].scores.tolist(), report.special):
            if not special:
                sums.setdefault(token, []).append(score)
    table = result["tokens"].set_index("token")
    assert set(table.index) == set(sums)
    for token, scores in sums.items():
        assert table.loc[token, "count"] == len(scores)
        assert table.loc[token, "mean_abs"] == pytest.approx(sum(abs(s) for s in scores) / len(scores), rel=1e-9)
    assert list(result["tokens"]["mean_abs"]) == sorted(result["tokens"]["mean_abs"], reverse=True)
    assert "[CLS]" not in table.index and result["summary"]["n_examples"][0] == 12


def test_an_interrupted_sweep_resumes_and_gives_the_same_file(sweep_models, small_sentiment, tmp_path):
    data = read_dataset(small_sentiment, MAP)
    sweep = EvaluateSweep(models=(sweep_models["classifier"], sweep_models["classifier_b"]), slices=("label",))
    run_sweep(sweep, data, shard_size=10, out=tmp_path / "whole.parquet")
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] >= 2

    out = tmp_path / "resumed.parquet"
    with pytest.raises(SweepCancelled, match="Cancelled after 2 of 6 shards"):
        run_sweep(sweep, data, shard_size=10, out=out, cancel=stop_after_two)
    assert not out.exists()
    assert len(list((tmp_path / "resumed.parquet.parts").rglob("shard-*.parquet"))) == 2

    def interrupt(fraction: float, message: str) -> None:  # Ctrl-C while the fourth shard is stored
        if message.startswith("evaluate: 4 of 6"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, data, shard_size=10, out=out, progress=interrupt)
    assert len(list((tmp_path / "resumed.parquet.parts").rglob("shard-*.parquet"))) == 4
    result = run_sweep(sweep, data, shard_size=10, out=out)
    assert (result.meta["computed_shards"], result.meta["reused_shards"]) == (2, 4)
    whole, _ = read_sections(tmp_path / "whole.parquet")
    resumed, _ = read_sections(out)
    assert whole.keys() == resumed.keys()
    for section in whole:
        pd.testing.assert_frame_equal(whole[section], resumed[section], check_exact=True)
    other = run_sweep(sweep, data, shard_size=20, out=tmp_path / "other.parquet")  # a different plan: computed anew
    assert other.meta["computed_shards"] == 3
