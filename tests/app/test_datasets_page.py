"""The Datasets page on tiny models: every number shown equals the sweep run outside the app; bad labels get a
clear error; Run after an interrupted run resumes from the kept shards; a Parquet from the command line opens."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import models
from analysis.sweeps import (ColumnMap, EvaluateSweep, HeadImportanceSweep, LocalExecutor, SweepCancelled,
                             read_dataset, run_sweep)
from tests.app.page_helpers import captions, chart_z, open_page, shown_text
from tests.tiny_models import make_checkpoint

ROOT = Path(__file__).resolve().parents[2]
SENTIMENT = ROOT / "sample_data" / "sentiment.csv"


@pytest.fixture
def sentiment_classifier(tmp_path):
    folder = tmp_path / "sentiment-classifier"
    make_checkpoint("bert-cls", folder, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    return str(folder)


@pytest.fixture
def parts(tmp_path, monkeypatch):
    folder = tmp_path / "parts"
    monkeypatch.setenv("WORKBENCH_SWEEP_PARTS", str(folder))
    return folder


def datasets_page(query=None):
    at = open_page("datasets.py", query=query)
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["Datasets"]
    return at


def metrics_table(at) -> pd.DataFrame:
    for element in at.dataframe:
        if list(element.value.columns)[:3] == ["model", "kind", "n_examples"]:
            return element.value.reset_index(drop=True)
    raise KeyError("no metrics table on the page")


def _head(rows: int) -> "object":
    data = read_dataset(SENTIMENT, ColumnMap(text="text", label="label"))
    return type(data)(frame=data.frame.head(rows), columns=data.columns, source=data.source, format=data.format)


def test_evaluate_a_classifier_on_the_sample_set(tiny_models, sentiment_classifier, parts):
    at = datasets_page({"model": sentiment_classifier})
    assert at.selectbox(key="ds_sample").value == "sentiment.csv"
    assert at.selectbox(key="ds_col_text_sentiment.csv").value == "text"
    assert at.selectbox(key="ds_col_label_sentiment.csv").value == "label"
    assert at.multiselect(key="ds_models").value == [sentiment_classifier]
    at.slider(key="ds_rows").set_value(40).run()
    at.multiselect(key="ds_slices").select("split").run()
    at.button(key="ds_run").click().run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    expected = run_sweep(EvaluateSweep(models=(sentiment_classifier,), slices=("label", "split")), _head(40),
                         shard_size=32)
    shown = metrics_table(at)
    assert shown["accuracy"].tolist() == expected["metrics"]["accuracy"].tolist()
    assert shown["macro_f1"].tolist() == expected["metrics"]["macro_f1"].tolist()
    assert at.selectbox(key="ds_slice_view").options == ["label", "split"]
    assert {b.proto.label for b in at.get("download_button")} >= {"metrics.csv", "slices.csv", "agreement.csv"}
    assert any("evaluate on 40 rows of sentiment.csv" in c for c in captions(at))


def test_head_importance_heatmap_equals_the_sweep(tiny_models, parts):
    at = datasets_page({"model": "smollm2"})
    at.selectbox(key="ds_sample").set_value("sentences.txt").run()
    at.selectbox(key="ds_sweep").set_value("head-importance").run()
    at.button(key="ds_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    data = read_dataset(ROOT / "sample_data" / "sentences.txt")
    expected = run_sweep(HeadImportanceSweep(model="smollm2"), data, executor=LocalExecutor(models.load_model),
                         shard_size=32)
    table = expected["head_importance"]
    z = np.full((2, 4), np.nan)
    for row in table.itertuples():
        z[row.layer, row.head] = row.score
    np.testing.assert_allclose(chart_z(at, "ds_heads_chart"), z, atol=1e-9)


def test_a_label_the_model_does_not_know_is_a_clear_error(tiny_models, parts):
    at = datasets_page({"model": "minilm-sentiment"})  # the tiny stand-in has two classes and no label names
    at.slider(key="ds_rows").set_value(20).run()
    at.button(key="ds_run").click().run()
    assert not at.exception
    message = shown_text(at.error[0].value)
    assert "sentiment.csv, column 'label': row 1 (line 2)" in message and "does not know" in message
    assert "have labels 'negative', 'positive' that minilm-sentiment does not know; its labels are class ids 0..1" in message


def test_run_after_an_interrupted_run_resumes_from_the_kept_shards(tiny_models, sentiment_classifier, parts):
    data = _head(96)
    sweep = EvaluateSweep(models=(sentiment_classifier,), slices=("label",))
    with pytest.raises(SweepCancelled):  # as Cancel leaves it: one shard of three stored
        run_sweep(sweep, data, executor=LocalExecutor(models.load_model), shard_size=32, parts_dir=parts,
                  cancel=lambda: True)
    at = datasets_page({"model": sentiment_classifier})
    at.session_state["ds_cancelled"] = True  # what Cancel's callback leaves for the next run
    at.slider(key="ds_rows").set_value(96).run()
    assert any("Cancelled" in w.value for w in at.warning)
    at.button(key="ds_run").click().run()
    assert not at.exception and not at.error
    assert any("2 shards computed, 1 reused" in c for c in captions(at))
    expected = run_sweep(sweep, data, shard_size=32)
    pd.testing.assert_frame_equal(metrics_table(at),
                                  expected["metrics"].dropna(axis=1, how="all"), check_exact=True)


def test_open_a_result_written_by_the_command_line(tiny_models, sentiment_classifier, tmp_path):
    from workbench.cli import main
    out = tmp_path / "heads.parquet"
    assert main(["sweep", "head-importance", "--model", sentiment_classifier, "--data", str(SENTIMENT),
                 "--limit", "30", "--out", str(out), "--quiet"]) == 0
    at = datasets_page()
    at.radio(key="ds_source").set_value("Open a result").run()
    at.text_input(key="ds_result_path").set_value(str(out)).run()
    assert not at.exception and not at.error
    from analysis.sweeps import read_result
    table = read_result(out)["head_importance"]
    z = chart_z(at, "ds_heads_chart")
    for row in table.itertuples():
        assert z[row.layer, row.head] == pytest.approx(row.score, abs=1e-12)
    at.text_input(key="ds_result_path").set_value(str(tmp_path / "nothing.parquet")).run()
    assert "No result file at" in at.error[0].value
