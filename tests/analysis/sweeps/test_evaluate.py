"""The evaluate sweep against the same numbers computed directly: scikit-learn's accuracy and macro-F1,
perplexity from the logits, jiwer's word error rate, exact match, per-slice metrics, agreement between models."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score

import models
from analysis.sweeps import ColumnMap, EvaluateSweep, agreement_matrix, read_dataset, run_sweep
from analysis.sweeps.evaluate import classification_metrics, normalize_answer, word_errors
from models.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
MAP = ColumnMap(text="text", label="label")


def _predict(folder: str, texts: list[str]) -> list[str]:
    model = models.load_model(folder)
    logits = model.run(texts, capture=False).logits  # (B, 2)
    return [model.labels[int(i)] for i in logits.argmax(-1)]


def test_classifier_metrics_slices_and_agreement_match_direct_computation(sweep_models, small_sentiment):
    data = read_dataset(small_sentiment, MAP)
    names = (sweep_models["classifier"], sweep_models["classifier_b"])
    result = run_sweep(EvaluateSweep(models=names, slices=("label", "split")), data, shard_size=16)
    texts, gold = list(data.frame["text"]), list(data.frame["label"])
    preds = {name: _predict(name, texts) for name in names}
    metrics = result["metrics"].set_index("model")
    for name in names:
        assert metrics.loc[name, "accuracy"] == pytest.approx(accuracy_score(gold, preds[name]), abs=1e-12)
        assert metrics.loc[name, "macro_f1"] == pytest.approx(f1_score(gold, preds[name], average="macro"), abs=1e-12)
        assert metrics.loc[name, "n_examples"] == 60 and metrics.loc[name, "kind"] == "classification"
    slices = result["slices"]
    for value in ("train", "test"):
        rows = [i for i, s in enumerate(data.frame["split"]) if s == value]
        got = slices[(slices["model"] == names[0]) & (slices["slice"] == "split") & (slices["value"] == value)].iloc[0]
        assert got["n_examples"] == len(rows)
        assert got["accuracy"] == pytest.approx(accuracy_score([gold[i] for i in rows], [preds[names[0]][i] for i in rows]))
    by_label = slices[(slices["model"] == names[0]) & (slices["slice"] == "label")]
    assert set(by_label["value"]) == {"negative", "positive"}
    matrix = agreement_matrix(result["agreement"])
    same = float(np.mean([a == b for a, b in zip(*preds.values())]))
    assert matrix.loc[names[0], names[1]] == pytest.approx(same) == matrix.loc[names[1], names[0]]
    assert matrix.loc[names[0], names[0]] == 1.0
    confusion = result["confusion"]
    assert confusion[confusion["model"] == names[0]]["count"].sum() == 60


def test_classification_metrics_follow_scikit_learn_with_classes_only_predicted():
    true = ["a", "a", "b", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "d", "c"]
    frame = pd.DataFrame({"true": true, "pred": pred}).value_counts().rename("count").reset_index()
    accuracy, macro = classification_metrics(frame)
    assert accuracy == pytest.approx(accuracy_score(true, pred))
    assert macro == pytest.approx(f1_score(true, pred, average="macro"))


def test_perplexity_of_a_causal_lm_is_exp_of_the_token_mean_nll(sweep_models, small_sentiment):
    data = read_dataset(small_sentiment, ColumnMap(text="text"))
    data = type(data)(frame=data.frame.head(30), columns=data.columns, source=data.source, format=data.format)
    result = run_sweep(EvaluateSweep(models=(sweep_models["lm"],), slices=("length",)), data, shard_size=7)
    model = models.load_model(sweep_models["lm"])
    nll, tokens = 0.0, 0
    for text in data.frame["text"]:
        ids = model.encode([text]).input_ids  # (1, T)
        logits = model.run(input_ids=ids, capture=False).logits.double()  # (1, T, V)
        nll += float(F.cross_entropy(logits[0, :-1], ids[0, 1:], reduction="sum"))
        tokens += ids.shape[1] - 1
    row = result["metrics"].iloc[0]
    assert row["tokens"] == tokens
    assert row["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-6)
    same = run_sweep(EvaluateSweep(models=(sweep_models["lm"],)), data, shard_size=64)["metrics"].iloc[0]
    assert same["perplexity"] == pytest.approx(row["perplexity"], rel=1e-9)  # shards only change the order of sums
    assert result["slices"]["tokens"].sum() == tokens


def test_exact_match_of_a_generating_model_against_a_reference(sweep_models, tmp_path):
    model = models.load_model(sweep_models["lm"])
    prompts = ["the cat sat", "a dog barked", "i love this", "the mat was"]
    continuation = [model.tokenizer.decode(model.generate(p, max_new_tokens=3)) for p in prompts]
    references = continuation[:2] + ["zebra", "quickly quickly"]
    pd.DataFrame({"prompt": prompts, "target": references}).to_csv(tmp_path / "gen.csv", index=False)
    data = read_dataset(tmp_path / "gen.csv", ColumnMap(text="prompt", reference="target"))
    row = run_sweep(EvaluateSweep(models=(sweep_models["lm"],), max_new_tokens=3), data)["metrics"].iloc[0]
    assert row["exact_match"] == 0.5


def test_word_error_rate_of_speech_matches_jiwer(tmp_path):
    import jiwer
    from tests.tiny_modal_models import make_whisper
    make_whisper(tmp_path / "whisper")
    speech = ROOT / "sample_data" / "speech"
    pd.read_csv(speech / "transcripts.csv").head(4).to_csv(tmp_path / "four.csv", index=False)
    data = read_dataset(tmp_path / "four.csv", ColumnMap(audio="file", reference="text"), base_dir=speech)
    result = run_sweep(EvaluateSweep(models=(str(tmp_path / "whisper"),)), data, shard_size=3)
    recognise = models.pipeline("automatic-speech-recognition", model=models.load_model(str(tmp_path / "whisper")))
    hyps = [normalize_answer(recognise(p)["text"]) for p in data.frame["file"]]
    refs = [normalize_answer(r) for r in data.frame["text"]]
    row = result["metrics"].iloc[0]
    assert row["kind"] == "speech" and row["n_examples"] == 4
    assert row["wer"] == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
    errors = sum(word_errors(r, h)[0] for r, h in zip(refs, hyps))
    assert row["wer"] == pytest.approx(errors / sum(len(r.split()) for r in refs), abs=1e-12)
    assert word_errors("The cat sat.", "the cat sat on") == (1, 3)
    assert jiwer.wer("the quick brown fox", "the quack brown") == pytest.approx(word_errors("the quick brown fox", "the quack brown")[0] / 4)


def test_bad_inputs_fail_before_anything_is_written(sweep_models, small_sentiment, tmp_path):
    out = tmp_path / "eval.parquet"
    out.write_bytes(b"an earlier result")
    frame = pd.read_csv(small_sentiment, dtype=str, keep_default_na=False)
    frame.loc[[4, 9], "label"] = "neutral"
    frame.to_csv(tmp_path / "three.csv", index=False)
    data = read_dataset(tmp_path / "three.csv", MAP)
    with pytest.raises(InputError) as error:
        run_sweep(EvaluateSweep(models=(sweep_models["classifier"],)), data, out=out)
    assert "three.csv, column 'label': row 5 (line 6), row 10 (line 11) have labels 'neutral'" in str(error.value)
    assert "its labels are 'negative', 'positive'" in str(error.value)
    with pytest.raises(InputError, match="needs a label column"):
        run_sweep(EvaluateSweep(models=(sweep_models["classifier"],)), read_dataset(small_sentiment, ColumnMap(text="text")),
                  out=out)
    with pytest.raises(InputError, match="Cannot slice by 'colour'"):
        run_sweep(EvaluateSweep(models=(sweep_models["classifier"],), slices=("colour",)), read_dataset(small_sentiment, MAP),
                  out=out)
    assert out.read_bytes() == b"an earlier result"
    assert not (tmp_path / "eval.parquet.parts").exists() or not any((tmp_path / "eval.parquet.parts").rglob("shard-*"))


def test_an_image_classifier_on_image_paths(tmp_path):
    from tests.tiny_modal_models import make_vit
    make_vit(tmp_path / "vit")
    images = ROOT / "sample_data" / "images"
    labels = ["cat", "dog", "fish", "cat", "dog", "fish", "cat"]
    pd.DataFrame({"file": [f"digit_{i}.png" for i in range(7)], "label": labels}).to_csv(tmp_path / "img.csv", index=False)
    data = read_dataset(tmp_path / "img.csv", ColumnMap(image="file", label="label"), base_dir=images)
    result = run_sweep(EvaluateSweep(models=(str(tmp_path / "vit"),), batch_size=3), data, shard_size=4)
    model = models.load_model(str(tmp_path / "vit"))
    logits = model.run(images=list(data.frame["file"]), capture=False).logits  # (7, 3)
    preds = [model.labels[int(i)] for i in logits.argmax(-1)]
    row = result["metrics"].iloc[0]
    assert row["accuracy"] == pytest.approx(accuracy_score(labels, preds), abs=1e-12)
    assert row["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro"), abs=1e-12)


def test_masked_lm_perplexity_is_seeded_per_shard(tmp_path, small_sentiment):
    from tests.tiny_models import make_checkpoint
    from analysis.metrics import batch_scores, make_eval_set
    make_checkpoint("bert-mlm", tmp_path / "mlm")
    name = str(tmp_path / "mlm")
    data = read_dataset(small_sentiment, ColumnMap(text="text")).head(20)
    first = run_sweep(EvaluateSweep(models=(name,), seed=3), data, shard_size=10)["metrics"].iloc[0]
    again = run_sweep(EvaluateSweep(models=(name,), seed=3), data, shard_size=10)["metrics"].iloc[0]
    other = run_sweep(EvaluateSweep(models=(name,), seed=4), data, shard_size=10)["metrics"].iloc[0]
    assert first["kind"] == "masked-lm" and first["perplexity"] == again["perplexity"] != other["perplexity"]
    model = models.load_model(name)
    texts = list(data.frame["text"])
    nll = tokens = 0.0
    for shard in range(2):  # shard i masks with seed + i
        for batch in make_eval_set(model, texts[10 * shard:10 * shard + 10], seed=3 + shard).batches:
            with torch.no_grad():
                scores = batch_scores(model, batch)
            nll += float((scores.loss.double() * scores.scored.double()).sum())
            tokens += float(scores.scored.sum())
    assert first["tokens"] == tokens
    assert first["perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-9)
