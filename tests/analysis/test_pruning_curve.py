"""Michel et al.'s iterative pruning curve on a tiny model: the steps, the heads chosen, the numbers measured."""
from __future__ import annotations

import pytest
import torch

from analysis.head_importance import compute_ablation_importance, compute_gradient_importance
from analysis.metrics import evaluate, make_eval_set
from analysis.pruning_curve import compute_pruning_curve
from models import load_model
from models.errors import InputError
from tests.tiny_models import make_checkpoint

TEXTS = ["the cat sat on the mat .", "a dog barked loudly .", "i love this film", "who was it ?",
         "that movie was very bad", "the dog ran away quickly"]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2-curve")
    make_checkpoint("gpt2", folder, initializer_range=0.3)
    model = load_model(str(folder))
    return model, make_eval_set(model, TEXTS, batch_size=4)


def test_curve_prunes_ten_percent_per_step_by_gradient_score(gpt2):
    model, data = gpt2
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    calls = []
    curve = compute_pruning_curve(model, data, progress=lambda f, m: calls.append((f, m)))
    table = curve.table
    # 8 heads: 10% rounds to 1 head per step, up to 90% (7 heads), always one head left
    assert list(table["heads_pruned"]) == list(range(8))
    assert list(table["heads_left"]) == list(range(8, 0, -1))
    assert table["fraction_pruned"].iloc[-1] == pytest.approx(7 / 8)
    assert table["parameters"].is_monotonic_decreasing and table["parameters"].iloc[0] == model.num_parameters()
    # step 0 is the model as given; the first pruned head is the gradient score's least important
    assert table["loss"].iloc[0] == pytest.approx(evaluate(model, data).loss)
    assert curve.pruned[1] == compute_gradient_importance(model, data).least_important(1)
    # every step's numbers are those of the model with exactly those heads removed
    for step in (3, 7):
        pruned = model.prune_heads(curve.pruned[step])
        assert table["loss"].iloc[step] == pytest.approx(evaluate(pruned, data).loss, abs=1e-6)
        assert table["parameters"].iloc[step] == pruned.num_parameters()
    # cumulative: each step's heads include the previous step's
    for earlier, later in zip(curve.pruned, curve.pruned[1:]):
        assert all(set(h) <= set(later.get(layer, [])) for layer, h in earlier.items())
    xs, ys = curve.curve()
    assert xs == list(table["fraction_pruned"]) and ys == list(table["loss"])
    # progress is monotone and ends at 1; the caller's model is untouched
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and "step 1 of 7" in calls[0][1]
    after = model.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_curve_by_ablation_with_larger_steps_and_held_out_data(gpt2):
    model, data = gpt2
    scoring = make_eval_set(model, TEXTS[:3], batch_size=3)
    held_out = make_eval_set(model, TEXTS[3:], batch_size=3)
    curve = compute_pruning_curve(model, held_out, score_data=scoring, method="ablation", metric="accuracy",
                                  step_fraction=0.25, max_fraction=1.0)
    assert list(curve.table["heads_pruned"]) == [0, 2, 4, 6]     # 8 is every head: never pruned
    assert curve.metric == "accuracy" and curve.curve()[1] == list(curve.table["accuracy"])
    # the heads are ranked on the scoring set, the metric measured on the held-out set
    assert curve.pruned[1] == compute_ablation_importance(model, scoring, metric="accuracy").least_important(2)
    assert curve.table["accuracy"].iloc[0] == pytest.approx(evaluate(model, held_out).accuracy)


def test_curve_rejects_bad_settings(gpt2):
    model, data = gpt2
    with pytest.raises(InputError, match="ranks heads with gradient or ablation"):
        compute_pruning_curve(model, data, method="entropy")
    with pytest.raises(InputError, match="must lie in"):
        compute_pruning_curve(model, data, step_fraction=0.0)
    with pytest.raises(InputError, match="leaves no step"):
        compute_pruning_curve(model, data, step_fraction=0.5, max_fraction=0.25)
    with pytest.raises(InputError, match="Metric 'f1' is unknown"):
        compute_pruning_curve(model, data, metric="f1")
