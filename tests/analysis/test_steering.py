"""Steering vectors on tiny random models: the vector is the difference of mean residual streams, alpha = 0
is plain generation, alpha * v really is added, vectors survive a safetensors round trip, bad ones are refused."""
from __future__ import annotations

import pytest
import torch

from analysis.generation import Sampling, generate_tokens
from analysis.steering import (compare_steering, generate_steered, load_steering_vector, save_steering_vector,
                               steered_prediction, steering_vector, steering_vector_bytes, steering_vector_from_bytes,
                               SteeringVector)
from models import load_model
from models.errors import HeadIndexError, InputError, WeightFileError
from tests.tiny_models import make_checkpoint

POSITIVE = ["i love this film", "good very good"]
NEGATIVE = ["i hate that movie .", "bad"]
PROMPT = "the cat sat on"


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"steer-{request.param}")
    make_checkpoint(request.param, folder, seed=2, initializer_range=0.2)
    loaded = load_model(str(folder))
    loaded.config.eos_token_id = None  # random weights: generate the full length every time
    return loaded


def test_the_vector_is_the_difference_of_mean_residual_streams(model):
    vector = steering_vector(model, POSITIVE, NEGATIVE, layer=1)
    def mean_of(prompts):  # each prompt alone, no padding: the mean over its tokens, then over prompts
        return torch.stack([model.run(p).hidden_states[1][0].mean(0) for p in prompts]).mean(0)
    torch.testing.assert_close(vector.vector, mean_of(POSITIVE) - mean_of(NEGATIVE), atol=1e-5, rtol=0)
    last = steering_vector(model, POSITIVE, NEGATIVE, layer=0, reduce="last")
    expected = (torch.stack([model.run(p).hidden_states[0][0, -1] for p in POSITIVE]).mean(0)
                - torch.stack([model.run(p).hidden_states[0][0, -1] for p in NEGATIVE]).mean(0))
    torch.testing.assert_close(last.vector, expected, atol=1e-5, rtol=0)
    assert vector.hook_name == "blocks.1.hook_resid_pre" and vector.d_model == model.config.d_model


def test_alpha_zero_equals_plain_generation(model):
    vector = steering_vector(model, POSITIVE, NEGATIVE, layer=1)
    plain = model.generate(PROMPT, max_new_tokens=8)
    assert len(plain) == 8
    assert generate_steered(model, PROMPT, vector, alpha=0.0, max_new_tokens=8) == plain
    sampled = Sampling("sample", temperature=1.5, top_k=20, seed=4)
    assert (generate_steered(model, PROMPT, vector, alpha=0.0, max_new_tokens=8, sampling=sampled)
            == generate_tokens(model, PROMPT, max_new_tokens=8, sampling=sampled))


def test_a_strong_vector_changes_the_text_and_adds_alpha_v_everywhere(model):
    vector = steering_vector(model, POSITIVE, NEGATIVE, layer=1)
    comparison = compare_steering(model, PROMPT, vector, alpha=50.0 / max(vector.norm, 1e-6), max_new_tokens=8)
    assert comparison.plain_ids == model.generate(PROMPT, max_new_tokens=8)
    assert comparison.steered_ids != comparison.plain_ids and comparison.first_difference is not None
    # the hook adds alpha * v at every position of the block input, and nothing else changes before it
    seen = {}
    with model.hooks({"blocks.1.hook_resid_pre": lambda x, _n: seen.__setitem__("plain", x.clone())}):
        model.run(PROMPT)
    from analysis.steering import steering_hooks
    with model.hooks(steering_hooks(model, vector, 2.0)):
        with model.hooks({"blocks.1.hook_resid_pre": lambda x, _n: seen.__setitem__("steered", x.clone())}):
            model.run(PROMPT)
    torch.testing.assert_close(seen["steered"] - seen["plain"], (2.0 * vector.vector).expand_as(seen["plain"]),
                               atol=1e-5, rtol=0)


def test_safetensors_round_trip(model, tmp_path):
    vector = steering_vector(model, POSITIVE, NEGATIVE, layer=1, reduce="last")
    again = load_steering_vector(save_steering_vector(vector, tmp_path / "v.safetensors"))
    assert torch.equal(again.vector, vector.vector)
    assert (again.layer, again.positive, again.negative, again.reduce, again.model_name) == (
        1, tuple(POSITIVE), tuple(NEGATIVE), "last", vector.model_name)
    from_bytes = steering_vector_from_bytes(steering_vector_bytes(vector))
    assert torch.equal(from_bytes.vector, vector.vector) and from_bytes.layer == 1
    from safetensors.torch import load_file
    assert set(load_file(str(tmp_path / "v.safetensors"))) == {"vector"}  # a plain safetensors file


def test_steered_prediction_of_a_classifier(tmp_path):
    make_checkpoint("bert-cls", tmp_path, initializer_range=0.2, id2label={0: "negative", 1: "positive"},
                    label2id={"negative": 0, "positive": 1})
    classifier = load_model(str(tmp_path))
    vector = steering_vector(classifier, POSITIVE, NEGATIVE, layer=1)
    table = steered_prediction(classifier, "i love this film", vector, alpha=0.0)
    assert set(table["output"]) == {"negative", "positive"}
    torch.testing.assert_close(torch.tensor(table["plain"].values), torch.tensor(table["steered"].values),
                               atol=1e-7, rtol=0)
    moved = steered_prediction(classifier, "i love this film", vector, alpha=20.0)
    assert moved["change"].abs().max() > 1e-3
    with pytest.raises(InputError, match="cannot generate"):
        generate_steered(classifier, "i love this film", vector, alpha=1.0)


def test_bad_vectors_and_layers_are_refused(model, tmp_path):
    vector = steering_vector(model, POSITIVE, NEGATIVE, layer=1)
    narrow = SteeringVector(vector=torch.zeros(model.config.d_model + 3), layer=1, model_name="other")
    with pytest.raises(InputError, match=r"shape \(35,\).*32 wide"):
        generate_steered(model, PROMPT, narrow, alpha=1.0)
    with pytest.raises(HeadIndexError, match="out of range"):
        steering_vector(model, POSITIVE, NEGATIVE, layer=2)
    with pytest.raises(HeadIndexError, match="out of range"):
        generate_steered(model, PROMPT, SteeringVector(vector=vector.vector, layer=5), alpha=1.0)
    with pytest.raises(InputError, match="No negative prompts"):
        steering_vector(model, POSITIVE, ["  "], layer=0)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightFileError):
        load_steering_vector(tmp_path / "junk.safetensors")
    with pytest.raises(WeightFileError):
        steering_vector_from_bytes(b"\x01\x00")


@pytest.mark.slow
def test_smollm2_steering_at_alpha_zero_is_plain_generation():
    smollm2 = load_model("smollm2")
    vector = steering_vector(smollm2, ["I love this, it is wonderful."], ["I hate this, it is awful."], layer=12)
    prompt = "My opinion of the new film is that"
    plain = smollm2.generate(prompt, max_new_tokens=12)
    assert generate_steered(smollm2, prompt, vector, alpha=0.0, max_new_tokens=12) == plain
    assert generate_steered(smollm2, prompt, vector, alpha=8.0, max_new_tokens=12) != plain
