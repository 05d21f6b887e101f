"""`local` and `ray` give the same Parquet on the sample sets: a real local Ray with 2 worker processes,
started once for this module and shut down at its end (no mocks). Also: an interrupted Ray sweep
resumes (here, on the local executor) to the same file, and an error inside an actor keeps its message."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from analysis.sweeps import (ColumnMap, EvaluateSweep, HeadImportanceSweep, RayExecutor, SweepCancelled, read_dataset,
                             run_sweep)
from analysis.sweeps.results import read_sections

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parents[3]
SENTIMENT = ROOT / "sample_data" / "sentiment.csv"
MAP = ColumnMap(text="text", label="label")
RUN_META = {"executor", "workers", "seconds", "computed_shards", "reused_shards"}


@pytest.fixture(scope="module")
def ray_cluster():
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 2 ** 20,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_executor(ray_cluster):
    executor = RayExecutor(workers=2)
    yield executor
    executor.close()
    assert ray_cluster.is_initialized()  # the executor joined the test's Ray; it does not stop it


def _equal_files(local: Path, distributed: Path, atol: float | None = None) -> None:
    a, meta_a = read_sections(local)
    b, meta_b = read_sections(distributed)
    assert a.keys() == b.keys()
    for section in a:
        if atol is None:
            pd.testing.assert_frame_equal(a[section], b[section], check_exact=True)
        else:
            pd.testing.assert_frame_equal(a[section], b[section], check_exact=False, rtol=0, atol=atol)
    assert {k: v for k, v in meta_a.items() if k not in RUN_META} == {k: v for k, v in meta_b.items() if k not in RUN_META}
    assert (meta_a["executor"], meta_b["executor"], meta_b["workers"]) == ("local", "ray", 2)


def test_two_actors_in_two_processes(ray_executor):
    import os
    pids = ray_executor.pids()
    assert len(set(pids)) == 2 and os.getpid() not in pids


def test_evaluate_on_the_sample_set_is_the_same_on_ray(ray_executor, sweep_models, tmp_path):
    data = read_dataset(SENTIMENT, MAP)
    sweep = EvaluateSweep(models=(sweep_models["classifier"], sweep_models["classifier_b"]), slices=("label", "split", "length"))
    run_sweep(sweep, data, executor="local", shard_size=64, out=tmp_path / "local.parquet")
    result = run_sweep(sweep, data, executor=ray_executor, shard_size=64, out=tmp_path / "ray.parquet")
    assert result.meta["computed_shards"] == 8
    _equal_files(tmp_path / "local.parquet", tmp_path / "ray.parquet")  # metrics exactly


def test_head_importance_on_the_sample_set_is_the_same_on_ray(ray_executor, sweep_models, tmp_path):
    data = read_dataset(SENTIMENT, MAP)
    sweep = HeadImportanceSweep(model=sweep_models["classifier"])
    run_sweep(sweep, data, executor="local", shard_size=64, out=tmp_path / "local.parquet")
    run_sweep(sweep, data, executor=ray_executor, shard_size=64, out=tmp_path / "ray.parquet")
    _equal_files(tmp_path / "local.parquet", tmp_path / "ray.parquet", atol=1e-6)
    sweep_lm = HeadImportanceSweep(model=sweep_models["lm"])
    lm_data = read_dataset(ROOT / "sample_data" / "sentences.txt")
    run_sweep(sweep_lm, lm_data, executor="local", shard_size=8, out=tmp_path / "lm_local.parquet")
    run_sweep(sweep_lm, lm_data, executor=ray_executor, shard_size=8, out=tmp_path / "lm_ray.parquet")
    _equal_files(tmp_path / "lm_local.parquet", tmp_path / "lm_ray.parquet", atol=1e-6)


def test_an_interrupted_ray_sweep_resumes_to_the_same_file(ray_executor, sweep_models, small_sentiment, tmp_path):
    data = read_dataset(small_sentiment, MAP)
    sweep = EvaluateSweep(models=(sweep_models["classifier"],), slices=("label",))
    run_sweep(sweep, data, executor="local", shard_size=10, out=tmp_path / "whole.parquet")
    out = tmp_path / "resumed.parquet"
    with pytest.raises(SweepCancelled):
        run_sweep(sweep, data, executor=ray_executor, shard_size=10, out=out, cancel=lambda: True)
    kept = len(list((tmp_path / "resumed.parquet.parts").rglob("shard-*.parquet")))
    assert 1 <= kept < 6 and not out.exists()
    result = run_sweep(sweep, data, executor=ray_executor, shard_size=10, out=out)
    assert result.meta["reused_shards"] == kept and result.meta["computed_shards"] == 6 - kept
    whole, _ = read_sections(tmp_path / "whole.parquet")
    resumed, _ = read_sections(out)
    for section in whole:
        pd.testing.assert_frame_equal(whole[section], resumed[section], check_exact=True)


def test_a_bad_model_name_is_reported_from_the_actor(ray_executor, small_sentiment, tmp_path):
    from models.errors import WorkbenchError
    data = read_dataset(small_sentiment, MAP)
    with pytest.raises(WorkbenchError, match=str(tmp_path / "no-such-model")):
        run_sweep(EvaluateSweep(models=(str(tmp_path / "no-such-model"),)), data, executor=ray_executor)
