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


def _assert_trace_equal(assembled, full):
    assert assembled.tokens == full.tokens and torch.equal(assembled.input_ids, full.input_ids)
    assert len(assembled.hidden_states) == len(full.hidden_states)
    for a, b in zip(assembled.hidden_states, full.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(assembled.resid_final, full.resid_final, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(assembled.logits, full.logits, atol=1e-5, rtol=1e-4)
    assert assembled.attentions_pending
    for a, b in zip(assembled.attentions, full.attentions):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_the_trace_assembled_from_decoding_steps_equals_a_full_pass(pair):
    _, model = pair
    model.config.eos_token_id, eos = None, model.config.eos_token_id  # generate the full length
    try:
        new, assembled = model.generate_traced("the cat sat on", max_new_tokens=9)
    finally:
        model.config.eos_token_id = eos
    prompt = model.encode("the cat sat on").input_ids[0].tolist()
    assert len(new) == 9 and assembled.input_ids.shape == (1, len(prompt) + 9)
    _assert_trace_equal(assembled, model.run(input_ids=torch.tensor([prompt + new])))


def test_the_assembled_trace_keeps_masks_and_falls_back_when_a_hook_reads_patterns(pair):
    _, model = pair
    text = "the cat sat on"
    with model.mask_heads({0: [1]}):
        new, assembled = model.generate_traced(text, max_new_tokens=5)
        full = model.run(input_ids=torch.tensor([model.encode(text).input_ids[0].tolist() + new]))
    _assert_trace_equal(assembled, full)
    assert float(assembled.attentions[0][:, 1].abs().max()) == 0.0
    seen = []
    with model.hooks({"blocks.0.attn.hook_pattern": lambda pattern, name: seen.append(pattern.shape[-2])}):
        new, hooked = model.generate_traced(text, max_new_tokens=3)
    assert seen[0] == len(model.encode(text).input_ids[0]) and seen[1:4] == [1, 1, 1]  # every step, live
    assert hooked.input_ids.shape[1] == len(model.encode(text).input_ids[0]) + len(new)
