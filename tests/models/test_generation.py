"""Greedy generation with the key/value cache equals recomputing the whole prefix, and transformers."""
from __future__ import annotations

import pytest
import torch

from models import load_model
from tests.tiny_models import make_checkpoint


@pytest.fixture(scope="module", params=["gpt2", "llama", "qwen2"])
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"gen-{request.param}")
    reference = make_checkpoint(request.param, folder, seed=3)
    return reference, load_model(str(folder))


def _without_cache(model, text, steps):
    ids = model.encode(text).input_ids
    new = []
    for _ in range(steps):
        next_id = int(model.forward(input_ids=ids, capture=False).logits[0, -1].argmax())
        new.append(next_id)
        ids = torch.cat([ids, torch.tensor([[next_id]])], dim=1)
    return new


def test_cached_generation_equals_recomputing_the_prefix(pair):
    _, model = pair
    model.config.eos_token_id, eos = None, model.config.eos_token_id  # generate the full length
    try:
        assert model.generate("the cat sat on", max_new_tokens=12) == _without_cache(model, "the cat sat on", 12)
    finally:
        model.config.eos_token_id = eos


def test_cached_logits_equal_the_full_forward(pair):
    _, model = pair
    ids = model.encode("the cat sat on the mat .").input_ids
    full = model.forward(input_ids=ids, capture=False).logits
    cache = [{} for _ in model.network.blocks]
    first = model.forward(input_ids=ids[:, :4], capture=False, cache=cache).logits
    steps = [model.forward(input_ids=ids[:, t : t + 1], capture=False, cache=cache).logits for t in range(4, ids.shape[1])]
    torch.testing.assert_close(torch.cat([first] + steps, dim=1), full, atol=1e-5, rtol=0)


def test_generation_matches_transformers(pair):
    reference, model = pair
    ids = model.encode("a dog barked").input_ids
    with torch.no_grad():
        theirs = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                                    pad_token_id=0, eos_token_id=None)[0, ids.shape[1]:].tolist()
    model.config.eos_token_id, eos = None, model.config.eos_token_id
    try:
        assert model.generate("a dog barked", max_new_tokens=10) == theirs
    finally:
        model.config.eos_token_id = eos


def test_masks_apply_to_every_cached_step(pair):
    _, model = pair
    with model.mask_heads({0: [0, 1], 1: [2]}):
        masked = model.generate("the cat", max_new_tokens=6)
        ids = model.encode("the cat").input_ids
        expected = []
        for _ in range(len(masked)):
            next_id = int(model.forward(input_ids=ids, capture=False).logits[0, -1].argmax())
            expected.append(next_id)
            ids = torch.cat([ids, torch.tensor([[next_id]])], dim=1)
    assert masked == expected
