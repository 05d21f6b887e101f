"""The step-by-step generation view on tiny random causal LMs: the steps are generate's tokens, each step's
attention, logit lens and probabilities equal a plain run of that context, and sampling obeys temperature and top-k."""
from __future__ import annotations

import pytest
import torch

from analysis.generation import (Sampling, generate_tokens, next_step, sampling_distribution, start_generation,
                                 step_through_generation)
from analysis.hidden_states import residual_stream
from analysis.lens import unembed
from models import load_model
from models.errors import InputError
from tests.tiny_models import make_checkpoint

PROMPT = "the cat sat on"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"steps-{request.param}")
    make_checkpoint(request.param, folder, seed=5, initializer_range=0.2)
    loaded = load_model(str(folder))
    loaded.config.eos_token_id = None
    return loaded


def test_greedy_steps_are_generate_and_match_a_plain_run(model):
    view = step_through_generation(model, PROMPT, max_new_tokens=5)
    assert view.new_ids == model.generate(PROMPT, max_new_tokens=5)
    for step in view.steps:
        context = view.ids[: step.position + 1]
        trace = model.run(input_ids=torch.tensor([context]))
        assert step.context_tokens == trace.tokens[0] and step.position == len(context) - 1
        for layer, pattern in enumerate(trace.attentions):
            torch.testing.assert_close(step.attention[layer], pattern[0, :, -1].float(), atol=1e-6, rtol=0)
            assert float(step.attention[layer].sum(-1).sub(1).abs().max()) < 1e-5  # each row is a distribution
        probs = trace.logits[0, -1].double().softmax(-1)
        assert step.probability == pytest.approx(float(probs[step.token_id]), abs=1e-6)
        assert step.sampling_probability == 1.0 and step.token_id == int(probs.argmax())
        assert step.top["probability"].is_monotonic_decreasing and step.top["rank"].iloc[0] == 0
        lens = unembed(model, residual_stream(trace)[:, -1][None])[0].double().softmax(-1)  # (L+1, vocab)
        torch.testing.assert_close(step.lens_token_probs.double(), lens[:, step.token_id], atol=1e-6, rtol=0)
        assert step.lens_token_probs[-1] == pytest.approx(step.probability, abs=1e-5)  # the last layer is the model
        assert step.lens_token_ranks[-1] == 0 and step.decided_at is not None
        assert all(step.lens_top_tokens[l] == step.token for l in range(step.decided_at, model.config.n_layers + 1))
        if step.decided_at > 0:
            assert step.lens_top_tokens[step.decided_at - 1] != step.token


def test_stepping_one_at_a_time_equals_one_call(model):
    sampling = Sampling("sample", temperature=0.8, top_k=5, seed=11)
    whole = step_through_generation(model, PROMPT, max_new_tokens=6, sampling=sampling)
    view = start_generation(model, PROMPT, sampling)
    for _ in range(6):
        next_step(model, view)
    assert view.new_ids == whole.new_ids == generate_tokens(model, PROMPT, 6, sampling)
    other_seed = generate_tokens(model, PROMPT, 12, Sampling("sample", temperature=5.0, seed=12))
    assert other_seed != generate_tokens(model, PROMPT, 12, Sampling("sample", temperature=5.0, seed=13))


def test_temperature_and_top_k_shape_the_sampling_distribution(model):
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0, 3.0])
    p = sampling_distribution(logits, Sampling("sample", temperature=2.0))
    torch.testing.assert_close(p, (logits.double() / 2.0).softmax(-1))
    top2 = sampling_distribution(logits, Sampling("sample", temperature=1.0, top_k=2))
    expected = torch.zeros(5, dtype=torch.float64)
    expected[[4, 0]] = torch.tensor([3.0, 2.0], dtype=torch.float64).softmax(-1)
    torch.testing.assert_close(top2, expected)
    greedy = sampling_distribution(logits, Sampling())
    assert greedy.tolist() == [0, 0, 0, 0, 1]
    view = step_through_generation(model, PROMPT, max_new_tokens=8, sampling=Sampling("sample", top_k=3, seed=1))
    for step in view.steps:  # every drawn token is among the 3 most likely
        assert int(step.top.set_index("id").loc[step.token_id, "rank"]) < 3
        assert step.sampling_probability > 0


def test_bad_settings_are_refused(model, tmp_path):
    with pytest.raises(InputError, match="Temperature must be above 0"):
        Sampling("sample", temperature=0)
    with pytest.raises(InputError, match="Unknown strategy"):
        Sampling("beam")
    make_checkpoint("bert", tmp_path)
    with pytest.raises(InputError, match="cannot generate"):
        start_generation(load_model(str(tmp_path)), "the cat")
