"""Head importance: the gradient score against finite differences, batched ablation against one mask
at a time, entropy against the per-example statistics, and the losses against transformers'."""
from __future__ import annotations

import math

import pytest
import torch

from analysis.attention import head_statistics
from analysis.head_importance import (METHODS, attention_entropy_sums, compute_ablation_importance,
                                      compute_attention_entropy, compute_gradient_importance,
                                      compute_head_importance, normalize_per_layer)
from analysis.metrics import IGNORE, batch_scores, evaluate, make_eval_set, read_labelled_csv
from models import load_model
from models.errors import InputError
from tests.tiny_models import make_checkpoint

TEXTS = ["the cat sat on the mat .", "a dog barked loudly .", "i love this film", "who was it ?",
         "that movie was very bad", "the dog ran away quickly"]
LABELS = ["1", "0", "1", "0", "0", "1"]
# larger random weights than transformers' default (0.02), so heads attend differently and matter
INIT = dict(initializer_range=0.3)


@pytest.fixture(scope="module", params=["gpt2", "llama", "bert-mlm", "bert-cls"])
def tiny(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    reference = make_checkpoint(request.param, folder, **INIT)
    model = load_model(str(folder))
    labels = LABELS if model.task == "sequence-classification" else None
    return request.param, reference, model, make_eval_set(model, TEXTS, labels, batch_size=4)


def _double(folder_kind, tmp_path):
    make_checkpoint(folder_kind, tmp_path, **INIT)
    model = load_model(str(tmp_path))
    model.network.double()  # this test's own copy: finite differences need float64
    return model


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert-cls"])
def test_gradient_score_agrees_with_finite_differences(kind, tmp_path):
    """I_h = mean over examples of |dL(x)/dxi_h|: each example's gradient is checked against a central difference."""
    model = _double(kind, tmp_path)
    labels = LABELS[:3] if model.task == "sequence-classification" else None
    data = make_eval_set(model, TEXTS[:3], labels, batch_size=3)
    result = compute_gradient_importance(model, data, normalize=False)
    batch = data.batches[0]
    # central differences err by O(eps^2); Llama's RMSNorm runs in float32 even in a float64 model
    # (as transformers' does), which adds ~1e-7 / eps: eps = 1e-3 keeps both near 1e-4 of the values
    eps = 1e-3
    expected = torch.zeros(model.n_layers, model.n_heads, dtype=torch.float64)
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            losses = []
            for sign in (1.0, -1.0):
                gate = torch.ones(model.n_heads, dtype=torch.float64)
                gate[head] += sign * eps
                with torch.no_grad():
                    from analysis.metrics import batch_scores
                    losses.append(batch_scores(model, batch, {layer: gate}).loss)  # (B,)
            per_example = (losses[0] - losses[1]) / (2 * eps)  # (B,) dL_b/dxi_h
            expected[layer, head] = per_example.abs().mean()
    torch.testing.assert_close(result.details["raw"], expected, rtol=1e-3, atol=1e-4)
    assert expected.min() > 1e-3  # every head's gradient is far from zero: the comparison has teeth
    assert torch.equal(result.scores, result.details["raw"])


def test_gradient_score_is_normalised_per_layer(tiny):
    _, _, model, data = tiny
    result = compute_gradient_importance(model, data)
    norms = result.scores.pow(2).sum(dim=1).sqrt()  # (n_layers,)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-9, rtol=0)
    torch.testing.assert_close(result.scores, normalize_per_layer(result.details["raw"]))
    assert result.scores.min() > 0 and result.n_examples == len(TEXTS)


def test_gradient_score_leaves_no_gradients_on_the_weights(tiny):
    _, _, model, data = tiny
    compute_gradient_importance(model, data)
    assert all(p.grad is None for p in model.network.parameters())


@pytest.mark.parametrize("heads_per_pass", [1, 3, None])
def test_batched_ablation_equals_masking_one_head_at_a_time(tiny, heads_per_pass):
    _, _, model, data = tiny
    result = compute_ablation_importance(model, data, metric="loss", heads_per_pass=heads_per_pass)
    baseline = evaluate(model, data)
    assert result.baseline == pytest.approx(baseline.loss)
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            with model.mask_heads({layer: [head]}):
                masked = evaluate(model, data)
            assert result.details["masked_loss"][layer, head] == pytest.approx(masked.loss, abs=1e-5)
            assert result.details["masked_accuracy"][layer, head] == pytest.approx(masked.accuracy, abs=1e-6)
            assert result.scores[layer, head] == pytest.approx(masked.loss - baseline.loss, abs=1e-5)
    assert result.scores.abs().max() > 1e-3  # heads of these weights matter


def test_ablation_on_accuracy_counts_a_drop_as_importance(tiny):
    _, _, model, data = tiny
    result = compute_ablation_importance(model, data, metric="accuracy")
    torch.testing.assert_close(result.scores, result.baseline - result.details["masked_accuracy"])


def test_scores_of_a_pruned_model_line_up_with_the_masked_full_model(tiny):
    _, _, model, data = tiny
    spec = {0: [1, 2], 1: [0]}
    pruned = model.prune_heads(spec)
    on_pruned = compute_ablation_importance(pruned, data)
    with model.mask_heads(spec):
        on_masked = compute_ablation_importance(model, data)
    present = on_pruned.present
    assert present.sum() == 5 and not present[0, 1] and not present[1, 0]
    torch.testing.assert_close(on_pruned.scores[present], on_masked.scores[present], atol=1e-5, rtol=0)
    assert torch.isnan(on_pruned.scores[~present]).all()
    assert len(on_pruned.to_frame()) == 5
    gradient = compute_gradient_importance(pruned, data)
    assert torch.isnan(gradient.scores[~present]).all() and not torch.isnan(gradient.scores[present]).any()


def test_entropy_matches_per_example_head_statistics(tiny):
    _, _, model, _ = tiny
    text = TEXTS[0]
    result = compute_attention_entropy(model, [text])
    stats = head_statistics(model.run(text))
    for row in stats.itertuples():
        assert result.scores[row.layer, row.head] == pytest.approx(row.entropy, abs=1e-6)


def test_entropy_over_a_padded_batch_counts_only_real_tokens(tiny):
    _, _, model, _ = tiny
    batched = compute_attention_entropy(model, TEXTS[:3], batch_size=3)
    totals, rows = 0.0, 0
    for text in TEXTS[:3]:  # each sentence alone: no padding at all
        trace = model.run(text)
        sums, count = attention_entropy_sums(trace.attentions, trace.attention_mask)
        totals, rows = totals + torch.stack(sums), rows + count
    torch.testing.assert_close(batched.scores, totals / rows, atol=1e-6, rtol=0)
    assert (batched.scores > 0).all() and (batched.scores < math.log(10)).all()


def test_language_model_loss_equals_transformers(tiny):
    kind, reference, model, data = tiny
    batch = data.batches[0]
    labels = batch.targets
    kwargs = dict(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    if kind.startswith("bert"):
        kwargs["token_type_ids"] = batch.token_type_ids
    with torch.no_grad():
        ours = batch_scores(model, batch)
        if kind == "bert-cls":
            theirs = reference(**kwargs, labels=labels).loss  # mean over examples
            assert ours.loss.mean().item() == pytest.approx(theirs.item(), abs=1e-5)
            return
        # per example, transformers' loss over that example's own tokens (one-example batches: no padding)
        for row in range(batch.size):
            n = int(batch.attention_mask[row].sum())
            one = {k: v[row:row + 1, :n] for k, v in kwargs.items()}
            theirs = reference(**one, labels=labels[row:row + 1, :n]).loss
            assert ours.loss[row].item() == pytest.approx(theirs.item(), abs=1e-5)


def test_masked_lm_targets_are_seeded_and_never_special(tiny):
    kind, _, model, data = tiny
    if kind != "bert-mlm":
        pytest.skip("masked-LM only")
    again = make_eval_set(model, TEXTS, batch_size=4)
    other_seed = make_eval_set(model, TEXTS, batch_size=4, seed=1)
    assert all(torch.equal(a.targets, b.targets) for a, b in zip(data.batches, again.batches))
    assert any(not torch.equal(a.targets, b.targets) for a, b in zip(data.batches, other_seed.batches))
    mask_id = model.tokenizer.token_to_id("[MASK]")
    special = {model.tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    for batch in data.batches:
        scored = batch.targets != IGNORE
        assert (scored.sum(-1) >= 1).all()                          # every example is scored somewhere
        assert (batch.input_ids[scored] == mask_id).all()           # scored positions are [MASK]ed
        assert not any(int(t) in special for t in batch.targets[scored])


def test_dispatcher_checks_method_and_parameters(tiny):
    _, _, model, data = tiny
    result = compute_head_importance(model, data, "ablation", metric="accuracy", heads_per_pass=2)
    assert result.method == "ablation" and result.metric == "accuracy"
    assert set(METHODS) == {"gradient", "ablation", "entropy"}
    with pytest.raises(InputError, match="Unknown importance method 'magic'"):
        compute_head_importance(model, data, "magic")
    with pytest.raises(InputError, match="takes no parameter 'steps'"):
        compute_head_importance(model, data, "gradient", steps=3)
    with pytest.raises(InputError, match="metric must be one of"):
        compute_head_importance(model, data, "ablation", metric="f1")
    with pytest.raises(InputError, match="needs an evaluation set"):
        compute_head_importance(model, TEXTS, "gradient")
    assert compute_head_importance(model, TEXTS, "entropy").metric == "entropy"  # entropy takes plain text


def test_result_views(tiny):
    _, _, model, data = tiny
    result = compute_gradient_importance(model, data)
    frame = result.to_frame()
    assert list(frame["rank"]) == list(range(1, model.n_layers * model.n_heads + 1))
    assert frame["score"].is_monotonic_decreasing
    assert result.table().shape == (model.n_layers, model.n_heads)
    lowest = result.least_important(3)
    picked = [(layer, head) for layer, heads in lowest.items() for head in heads]
    weakest = frame.tail(3)
    assert sorted(picked) == sorted(zip(weakest["layer"], weakest["head"]))


def test_models_without_a_loss_and_bad_labels_are_explained(tmp_path, tiny):
    kind, _, model, data = tiny
    make_checkpoint("bert", tmp_path, **INIT)
    bare = load_model(str(tmp_path))  # no task head: no loss to differentiate
    with pytest.raises(InputError, match="no head to measure a loss with"):
        make_eval_set(bare, TEXTS)
    assert compute_attention_entropy(bare, TEXTS).scores.shape == (2, 4)  # entropy still works
    if kind == "bert-cls":
        with pytest.raises(InputError, match="one label per text"):
            make_eval_set(model, TEXTS, LABELS[:2])
        with pytest.raises(InputError, match="Label 'great' is not one of"):
            make_eval_set(model, TEXTS[:1], ["great"])
        with pytest.raises(InputError, match="out of range"):
            make_eval_set(model, TEXTS[:1], [7])
    with pytest.raises(InputError, match="made for a"):
        compute_gradient_importance(bare, data)


def test_read_labelled_csv(tmp_path):
    path = tmp_path / "set.csv"
    path.write_text('text,label,split\n"good, very good",positive,train\nbad,negative,train\nawful,negative,test\n')
    assert read_labelled_csv(path) == (["good, very good", "bad", "awful"], ["positive", "negative", "negative"])
    assert read_labelled_csv(path, split="test") == (["awful"], ["negative"])
    with pytest.raises(InputError, match="no rows in split 'validation'"):
        read_labelled_csv(path, split="validation")
    (tmp_path / "bad.csv").write_text("sentence,label\nx,1\n")
    with pytest.raises(InputError, match="has no column text"):
        read_labelled_csv(tmp_path / "bad.csv")
