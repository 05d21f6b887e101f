"""Head masking and pruning: exact against transformers 4.x, scoped, and undone afterwards.

transformers 4.x is the reference: `head_mask=` zeroes (or scales) a head's slice of the
attention output before the output projection, and `model.prune_heads` slices the q/k/v rows
and output-projection columns. Llama-type models never had `head_mask`; there the reference is
transformers' Llama with the same slice of its `o_proj` input zeroed by a pre-hook.
"""
from __future__ import annotations

import copy
import json
import threading

import numpy as np
import pytest
import torch

from models import HeadIndexError, load_model
from tests.tiny_models import make_checkpoint

ENCODERS_AND_GPT2 = ["bert", "bert-cls", "distilbert", "roberta", "gpt2"]   # transformers 4.x has head_mask and prune_heads
GQA = ["llama", "qwen2"]                                                    # 4 query heads share 2 key/value heads
TEXTS = ["a dog barked loudly and then ran away quickly .", "the cat sat ."]
ATOL = 1e-5


def keyed(model, spec):
    """A {layer: heads} spec as the config keeps it: by (stack, layer)."""
    return {(model.config.main_stack, layer): heads for layer, heads in spec.items()}


@pytest.fixture(scope="module", params=ENCODERS_AND_GPT2 + GQA)
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    reference = make_checkpoint(request.param, folder)
    return request.param, reference, load_model(str(folder)), folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert-only")
    make_checkpoint("bert", folder)
    return load_model(str(folder))


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("llama-only")
    reference = make_checkpoint("llama", folder)
    return reference, load_model(str(folder))


def _reference_inputs(kind, trace):
    kwargs = dict(input_ids=trace.input_ids, attention_mask=trace.attention_mask,
                  output_attentions=kind not in GQA, output_hidden_states=True)
    if kind.startswith("bert"):
        kwargs["token_type_ids"] = trace.token_type_ids
    return kwargs


def _assert_same_hidden(ours, theirs, mask, atol=ATOL):
    real = mask.bool()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)


# ---------------------------------------------------------------- masking

def test_mask_equals_transformers_head_mask(pair):
    kind, reference, model, _ = pair
    if kind in GQA:
        pytest.skip("Llama never had head_mask; see the o_proj reference below")
    head_mask = torch.ones(2, 4)
    head_mask[0, 1] = 0.0        # one head
    head_mask[1, :] = 0.0        # a whole layer
    head_mask[0, 3] = 0.3        # a soft scale
    with model.mask_heads(head_mask):
        ours = model.run(TEXTS)
    with torch.no_grad():
        theirs = reference(**_reference_inputs(kind, ours), head_mask=head_mask)
    _assert_same_hidden(ours.hidden_states, theirs.hidden_states, ours.attention_mask)
    keys = ours.attention_mask.bool()[:, None, None, :]
    for a, b in zip(ours.attentions, theirs.attentions):  # masked heads report scaled patterns, as 4.x does
        torch.testing.assert_close(a * keys, b * keys, atol=ATOL, rtol=0)
    if getattr(theirs, "logits", None) is not None:
        real = ours.attention_mask.bool()
        got, want = (ours.logits[real], theirs.logits[real]) if theirs.logits.dim() == 3 else (ours.logits, theirs.logits)
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    unmasked = model.run(TEXTS)
    assert not torch.allclose(unmasked.hidden_states[-1], ours.hidden_states[-1], atol=1e-3)  # the mask did something


def test_mask_spec_forms_agree(pair):
    _, _, model, _ = pair
    tensor = torch.ones(2, 4)
    tensor[0, 2], tensor[1, 0], tensor[1, 1] = 0.0, 0.5, 0.0
    with model.mask_heads(tensor):
        a = model.run(TEXTS).hidden_states[-1]
    with model.mask_heads({0: [2], 1: {0: 0.5, 1: 0.0}}):
        b = model.run(TEXTS).hidden_states[-1]
    with model.mask_heads({0: [np.int64(2)], 1: {np.int64(0): 0.5, 1: 0}}):  # widgets and DataFrames hand over numpy ints
        c = model.run(TEXTS).hidden_states[-1]
    assert torch.equal(a, b) and torch.equal(b, c)


@pytest.mark.parametrize("kind", GQA)
def test_gqa_mask_equals_zeroed_o_proj_input_in_transformers(kind, tmp_path):
    reference = make_checkpoint(kind, tmp_path)
    model = load_model(str(tmp_path))
    kill = {0: [1], 1: [0, 3]}
    d_head = model.config.d_head
    handles = []
    for layer, heads in kill.items():
        def zero_heads(module, args, heads=heads):
            x = args[0].clone()  # (B, T, H * dh): the heads' outputs side by side, before o_proj
            for h in heads:
                x[..., h * d_head:(h + 1) * d_head] = 0
            return (x,)
        handles.append(reference.model.layers[layer].self_attn.o_proj.register_forward_pre_hook(zero_heads))
    with model.mask_heads(kill):
        ours = model.run(TEXTS)
    try:
        with torch.no_grad():
            theirs = reference(**_reference_inputs(kind, ours))
    finally:
        for handle in handles:
            handle.remove()
    _assert_same_hidden(ours.hidden_states, theirs.hidden_states, ours.attention_mask)
    real = ours.attention_mask.bool()
    torch.testing.assert_close(ours.logits[real], theirs.logits[real], atol=ATOL, rtol=0)


def _capture(model, names):
    store = {}
    with model.hooks({name: (lambda x, n: store.__setitem__(n, x.clone())) for name in names}):
        model.run(TEXTS)
    return store


def test_masking_one_head_changes_only_that_heads_contribution(pair):
    _, _, model, _ = pair
    layer, head = 1, 2
    names = [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.attn.hook_pattern", f"blocks.{layer}.attn.hook_k",
             f"blocks.{layer}.attn.hook_v", f"blocks.{layer}.hook_attn_out"]
    before = _capture(model, names)
    with model.mask_heads({layer: [head]}):
        after = _capture(model, names)
    z0, z1 = before[names[0]], after[names[0]]  # (B, T, H, dh)
    others = [h for h in range(4) if h != head]
    assert torch.equal(z0[:, :, others], z1[:, :, others])           # other heads' outputs: identical
    assert torch.count_nonzero(z1[:, :, head]) == 0                   # the masked head: zero
    assert torch.equal(before[names[1]], after[names[1]])             # hooked patterns are pre-mask: untouched
    assert torch.equal(before[names[2]], after[names[2]])             # keys and values (shared in GQA) untouched
    assert torch.equal(before[names[3]], after[names[3]])
    # the attention output moved by exactly the head's own term z_h @ W_o[:, h]^T
    o_proj = model.network.blocks[layer].attn.o_proj
    d_head = model.config.d_head
    contribution = z0[:, :, head] @ o_proj.weight[:, head * d_head:(head + 1) * d_head].T  # (B, T, d)
    torch.testing.assert_close(before[names[4]] - after[names[4]], contribution, atol=1e-5, rtol=0)


def test_mask_is_undone_after_the_context_even_on_error(bert):
    plain = bert.run(TEXTS).hidden_states[-1]
    with bert.mask_heads({0: [0, 1], 1: [3]}):
        masked = bert.run(TEXTS).hidden_states[-1]
    assert not torch.allclose(plain, masked, atol=1e-3)
    assert torch.equal(bert.run(TEXTS).hidden_states[-1], plain)
    with pytest.raises(RuntimeError, match="boom"):
        with bert.mask_heads({0: [0]}):
            raise RuntimeError("boom")
    assert torch.equal(bert.run(TEXTS).hidden_states[-1], plain)


def test_nested_masks_multiply(bert):
    with bert.mask_heads({0: {1: 0.5}}):
        with bert.mask_heads({0: {1: 0.5}, 1: [2]}):
            nested = bert.run(TEXTS).hidden_states[-1]
    with bert.mask_heads({0: {1: 0.25}, 1: [2]}):
        once = bert.run(TEXTS).hidden_states[-1]
    torch.testing.assert_close(nested, once, atol=1e-6, rtol=0)


def test_mask_is_invisible_to_another_thread(bert):
    """One cached model serves every Streamlit session: a mask in one thread must not leak into another."""
    plain = bert.run(TEXTS).hidden_states[-1]
    inside, seen = threading.Event(), {}
    release = threading.Event()

    def masked_session():
        with bert.mask_heads({0: [0, 1, 2, 3], 1: [0, 1, 2, 3]}):
            inside.set()
            release.wait(timeout=30)

    worker = threading.Thread(target=masked_session)
    worker.start()
    try:
        assert inside.wait(timeout=30)
        seen["other"] = bert.run(TEXTS).hidden_states[-1]
    finally:
        release.set()
        worker.join()
    assert torch.equal(seen["other"], plain)


def test_per_example_scales_mask_each_example_on_its_own(bert):
    """(B, H) scales give each example its own mask: batched ablation and per-example gradients rely on it."""
    enc = bert.encode(TEXTS)
    scales = {1: torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])}  # (B, H)
    both = bert.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask, head_scales=scales).final
    for row, head in ((0, 1), (1, 3)):
        with bert.mask_heads({1: [head]}):
            alone = bert.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask).final
        real = enc.attention_mask[row].bool()
        torch.testing.assert_close(both[row, real], alone[row, real], atol=1e-6, rtol=0)


# ---------------------------------------------------------------- pruning

PRUNE_SPECS = [
    {0: [1]},                          # one head
    {0: [0, 2], 1: [1, 2, 3]},         # different counts per layer
    {0: [0, 1, 2, 3], 1: [3]},         # a whole layer's attention
]


@pytest.mark.parametrize("spec", PRUNE_SPECS, ids=["one", "uneven", "whole-layer"])
def test_pruned_equals_masked(pair, spec):
    _, _, model, _ = pair
    pruned = model.prune_heads(spec)
    with model.mask_heads(spec):
        masked = model.run(TEXTS)
        masked_fast = model.forward(input_ids=masked.input_ids, attention_mask=masked.attention_mask, capture=False)
    ours = pruned.run(TEXTS)
    fast = pruned.forward(input_ids=ours.input_ids, attention_mask=ours.attention_mask, capture=False)
    _assert_same_hidden(ours.hidden_states, masked.hidden_states, ours.attention_mask)
    real = ours.attention_mask.bool()
    torch.testing.assert_close(fast.final[real], masked_fast.final[real], atol=ATOL, rtol=0)
    if ours.logits is not None:
        got, want = (ours.logits[real], masked.logits[real]) if ours.logits.dim() == 3 else (ours.logits, masked.logits)
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    for layer, pattern in enumerate(ours.attentions):
        kept = [h for h in range(4) if h not in spec.get(layer, [])]
        assert pattern.shape[1] == len(kept)
        assert ours.head_ids[layer] == kept
        keys = real[:, None, None, :]
        torch.testing.assert_close(pattern * keys, masked.attentions[layer][:, kept] * keys, atol=ATOL, rtol=0)


def test_pruned_equals_transformers_prune_heads(pair):
    kind, reference, model, _ = pair
    if kind in GQA:
        pytest.skip("transformers' Llama has no prune_heads")
    spec = {0: [1, 2], 1: [0, 3]}  # transformers 4.57's BERT cannot run a layer with every head pruned
    theirs_model = copy.deepcopy(reference)
    theirs_model.prune_heads(spec)
    ours = model.prune_heads(spec).run(TEXTS)
    with torch.no_grad():
        theirs = theirs_model(**_reference_inputs(kind, ours))
    _assert_same_hidden(ours.hidden_states, theirs.hidden_states, ours.attention_mask)
    ours_params = model.prune_heads(spec).num_parameters()
    assert ours_params == sum(p.numel() for p in theirs_model.parameters())


def test_pruning_returns_a_new_model_and_leaves_the_original_alone(bert):
    before = {k: v.clone() for k, v in bert.network.state_dict().items()}
    plain = bert.run(TEXTS).hidden_states[-1]
    pruned = bert.prune_heads({0: [0, 1]})
    assert pruned is not bert and pruned.network is not bert.network
    assert bert.config.pruned_heads == {} and pruned.config.pruned_heads == {("encoder", 0): [0, 1]}
    after = bert.network.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert torch.equal(bert.run(TEXTS).hidden_states[-1], plain)
    with pruned.mask_heads({0: [2]}):  # a mask on the copy is not a mask on the original
        assert torch.equal(bert.run(TEXTS).hidden_states[-1], plain)


def test_pruning_in_two_steps_equals_one_step_and_keeps_head_names(bert):
    twice = bert.prune_heads({0: [1]}).prune_heads({0: [3], 1: [0]})
    once = bert.prune_heads({0: [1, 3], 1: [0]})
    assert twice.config.pruned_heads == once.config.pruned_heads == {("encoder", 0): [1, 3], ("encoder", 1): [0]}
    assert twice.head_ids() == [[0, 2], [1, 2, 3]]
    torch.testing.assert_close(twice.run(TEXTS).hidden_states[-1], once.run(TEXTS).hidden_states[-1], atol=1e-6, rtol=0)
    with twice.mask_heads({0: [2]}):  # heads keep their original numbers after pruning
        masked_pruned = twice.run(TEXTS).hidden_states[-1]
    with bert.mask_heads({0: [1, 2, 3], 1: [0]}):
        masked_full = bert.run(TEXTS).hidden_states[-1]
    torch.testing.assert_close(masked_pruned, masked_full, atol=ATOL, rtol=0)


def test_pruning_removes_exactly_the_heads_parameters(bert):
    d, dh = bert.config.d_model, bert.config.d_head
    per_head = 3 * (d * dh + dh) + d * dh  # q, k, v rows with biases, and the output-projection columns
    pruned = bert.prune_heads({0: [0, 1, 2], 1: [1]})
    assert bert.num_parameters() - pruned.num_parameters() == 4 * per_head


def test_gqa_pruning_removes_a_key_value_head_only_with_its_whole_group(llama):
    _, model = llama
    d, dh = model.config.d_model, model.config.d_head  # 4 query heads: 0,1 read kv head 0; 2,3 read kv head 1
    partial = model.prune_heads({0: [0]})
    whole = model.prune_heads({0: [0, 1]})
    attn_partial, attn_whole = partial.network.blocks[0].attn, whole.network.blocks[0].attn
    assert (attn_partial.n_heads, attn_partial.n_kv_heads) == (3, 2)
    assert attn_partial.kv_index.tolist() == [0, 1, 1]
    assert (attn_whole.n_heads, attn_whole.n_kv_heads) == (2, 1)
    assert attn_whole.k_proj.weight.shape == (dh, d)
    assert model.num_parameters() - partial.num_parameters() == 2 * d * dh            # q rows and o columns only
    assert model.num_parameters() - whole.num_parameters() == 2 * (2 * d * dh) + 2 * d * dh  # plus one k and one v head
    for spec, pruned in (({0: [0]}, partial), ({0: [0, 1]}, whole)):
        with model.mask_heads(spec):
            masked = model.run(TEXTS)
        torch.testing.assert_close(pruned.run(TEXTS).logits[masked.attention_mask.bool()],
                                   masked.logits[masked.attention_mask.bool()], atol=ATOL, rtol=0)


# ---------------------------------------------------------------- saving and loading

def test_pruned_model_round_trips_through_save_and_load(pair, tmp_path):
    kind, _, model, _ = pair
    spec = {0: [0, 2], 1: [0, 1, 2, 3]} if kind in GQA + ["gpt2", "distilbert"] else {0: [0, 2], 1: [3]}
    pruned = model.prune_heads(spec)
    pruned.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["pruned_heads"] == {str(k): v for k, v in spec.items()}  # transformers 4.x's field and form
    again = load_model(str(tmp_path))
    assert again.config.pruned_heads == keyed(again, spec)
    assert again.head_ids() == pruned.head_ids()
    shapes = {k: v.shape for k, v in pruned.network.state_dict().items()}
    assert {k: v.shape for k, v in again.network.state_dict().items()} == shapes
    a, b = pruned.run(TEXTS), again.run(TEXTS)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_pruned_folder_loads_in_transformers_and_back(kind, tmp_path):
    """Both directions: our pruned save loads in transformers 4.x, and theirs loads here."""
    import transformers as tf
    reference = make_checkpoint(kind, tmp_path / "full")
    model = load_model(str(tmp_path / "full"))
    spec = {0: [1, 2], 1: [3]}
    ours = model.prune_heads(spec)
    ours.save_pretrained(tmp_path / "ours")
    auto = tf.AutoModel if kind == "bert" else tf.AutoModelForCausalLM
    theirs_loaded = auto.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    trace = ours.run(TEXTS)
    with torch.no_grad():
        out = theirs_loaded(**_reference_inputs(kind, trace))
    _assert_same_hidden(trace.hidden_states, out.hidden_states, trace.attention_mask)

    reference.prune_heads(spec)
    reference.save_pretrained(tmp_path / "theirs")
    loaded_here = load_model(str(tmp_path / "theirs"))
    assert loaded_here.config.pruned_heads == keyed(loaded_here, spec)
    theirs_here = loaded_here.run(input_ids=trace.input_ids, attention_mask=trace.attention_mask)  # saved without a tokenizer
    _assert_same_hidden(theirs_here.hidden_states, trace.hidden_states, trace.attention_mask)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("spec, message", [
    ({2: [0]}, "Layer 2 is out of range: the model has layers 0..1"),
    ({-1: [0]}, "Layer -1 is out of range"),
    ({0: [4]}, "Head 4 of layer 0 is out of range: heads are 0..3"),
    ({0: [-1]}, "Head -1 of layer 0 is out of range"),
    ({0: [True]}, "must be a whole number"),
    ({0: ["1"]}, "must be a whole number"),
    ({0: {1: 1.5}}, "must lie between 0 and 1"),
    (torch.ones(3, 4), r"must have shape \(2, 4\)"),
    ([0, 1], "Give heads as"),
])
def test_bad_masks_raise_clear_errors(bert, spec, message):
    with pytest.raises(HeadIndexError, match=message):
        with bert.mask_heads(spec):
            pass


def test_wrong_shaped_head_scales_in_forward_are_explained(bert):
    enc = bert.encode(TEXTS)
    with pytest.raises(HeadIndexError, match=r"Head scales of layer 0 must have shape \(4,\) or \(batch, 4\)"):
        bert.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask, head_scales={0: torch.ones(3)})


def test_bad_prunes_raise_clear_errors(bert):
    with pytest.raises(HeadIndexError, match="no attention at all"):
        bert.prune_heads({0: [0, 1, 2, 3], 1: [0, 1, 2, 3]})
    with pytest.raises(HeadIndexError, match="Layer 5 is out of range"):
        bert.prune_heads({5: [0]})
    pruned = bert.prune_heads({0: [1]})
    with pytest.raises(HeadIndexError, match="Head 1 of layer 0 was pruned"):
        pruned.prune_heads({0: [1]})
    with pytest.raises(HeadIndexError, match="Head 1 of layer 0 was pruned"):
        with pruned.mask_heads({0: [1]}):
            pass
    with pytest.raises(HeadIndexError, match="no attention at all"):  # counting heads already pruned
        pruned.prune_heads({0: [0, 2, 3], 1: [0, 1, 2, 3]})
