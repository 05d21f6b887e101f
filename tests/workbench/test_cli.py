"""The `workbench` command line: the installed console script and `python -m workbench` run the same sweeps
as the functions, write the same Parquet, and turn bad input into a one-line error and exit code 2."""
from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pandas as pd
import pytest

from analysis.sweeps import ColumnMap, EvaluateSweep, HeadImportanceSweep, read_dataset, read_result, run_sweep
from tests.analysis.sweeps.conftest import small_sentiment, sweep_models  # noqa: F401  (fixtures)
from workbench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def test_the_console_script_is_declared():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("workbench") == "workbench.cli:main"
    assert (Path(sys.executable).parent / "workbench").exists()


def test_head_importance_from_the_command_line_equals_the_function(sweep_models, small_sentiment, tmp_path):
    out = tmp_path / "heads.parquet"
    done = _cli("sweep", "head-importance", "--model", sweep_models["classifier"], "--data", str(small_sentiment),
                "--text-column", "text", "--label-column", "label", "--executor", "local", "--shard-size", "16",
                "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"wrote {out}: head-importance on 60 rows of {small_sentiment.name} (4 shards)" in done.stdout
    assert "head importance: 4 of 4 shards" in done.stderr  # the tqdm bar
    data = read_dataset(small_sentiment, ColumnMap(text="text", label="label"))
    expected = run_sweep(HeadImportanceSweep(model=sweep_models["classifier"]), data, shard_size=16)
    pd.testing.assert_frame_equal(read_result(out)["head_importance"], expected["head_importance"], check_exact=True)


def test_evaluate_two_models_with_slices(sweep_models, small_sentiment, tmp_path, capsys):
    out = tmp_path / "eval.parquet"
    code = main(["sweep", "evaluate", "--models", f"{sweep_models['classifier']},{sweep_models['classifier_b']}",
                 "--data", str(small_sentiment), "--slice-by", "label,length", "--out", str(out), "--quiet"])
    assert code == 0
    result = read_result(out)
    assert list(result["metrics"]["model"]) == [sweep_models["classifier"], sweep_models["classifier_b"]]
    assert set(result["slices"]["slice"]) == {"label", "length"}
    assert "accuracy" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_code_2(sweep_models, small_sentiment, tmp_path):
    done = _cli("sweep", "evaluate", "--models", sweep_models["classifier"], "--data", str(small_sentiment),
                "--text-column", "review", "--label-column", "label", "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {small_sentiment.name} has no column 'review' (as text); its columns are "
                                   "'text', 'label', 'split'.")
    assert not (tmp_path / "x.parquet").exists()
    done = _cli("sweep", "head-importance", "--model", sweep_models["classifier"], "--data", str(small_sentiment),
                "--executor", "local", "--address", "127.0.0.1:1", "--out", str(tmp_path / "x.parquet"), "--quiet")
    assert done.returncode == 2 and "--address is for the ray executor" in done.stderr
    with pytest.raises(SystemExit):
        main(["sweep", "nonsense"])


def test_ray_from_the_command_line_in_a_folder_with_a_models_folder(sweep_models, small_sentiment, tmp_path):
    """The CLI starts a local Ray (1 worker) and stops it; Ray puts the working directory first on its workers'
    sys.path, and a `models/` folder there (checkpoints, say) must not hide this project's package."""
    (tmp_path / "models").mkdir()
    local, distributed = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    args = ["sweep", "evaluate", "--models", sweep_models["classifier"], "--data", str(small_sentiment),
            "--slice-by", "label", "--shard-size", "16", "--quiet"]
    assert main([*args, "--out", str(local)]) == 0
    done = subprocess.run([sys.executable, "-m", "workbench", *args, "--executor", "ray", "--workers", "1",
                           "--out", str(distributed)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "executor ray" in done.stdout
    for section, frame in read_result(local).sections.items():
        pd.testing.assert_frame_equal(frame, read_result(distributed)[section], check_exact=True)
