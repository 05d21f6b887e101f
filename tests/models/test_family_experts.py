"""Expert routing (models/experts.py): Mixtral and Qwen2-MoE equal transformers, traces carry the router's
choices (equal to transformers' `output_router_logits`), and experts are masked like heads: scoped, exact, and
as if the masked experts were not there."""
from __future__ import annotations

import importlib
import re

import pytest
import torch
import transformers as tf

from models import HeadIndexError, UnsupportedArchitectureError, load_model
from models.experts import ExpertMLP, expert_layers
from models.families import FAMILIES
from tests.models.decoder_parity import (ATOL, BATCH, TEXT, assert_same_trace, check_decoder_family,
                                         make_decoder_checkpoint, reference_outputs)

# odd shapes: 6 query heads in 2 groups of 3, d_head 6, 5 experts of width 10, a dense width of 20
TINY = dict(hidden_size=36, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
            max_position_embeddings=64)
MIXTRAL = dict(TINY, intermediate_size=10, num_local_experts=5, num_experts_per_tok=2)
QWEN = dict(TINY, intermediate_size=20, moe_intermediate_size=10, shared_expert_intermediate_size=14, num_experts=5,
            num_experts_per_tok=2)
CLASSES = {"mixtral": (tf.MixtralConfig, tf.MixtralForCausalLM), "qwen2_moe": (tf.Qwen2MoeConfig, tf.Qwen2MoeForCausalLM)}


def _checkpoint(tmp_path, kind, **config):
    folder = tmp_path / kind
    reference = make_decoder_checkpoint(*CLASSES[kind], folder, **{**(MIXTRAL if kind == "mixtral" else QWEN), **config})
    return reference, folder


# ---------------------------------------------------------------- parity

def test_mixtral_equals_transformers_with_a_window_shorter_than_the_text(tmp_path):
    reference, folder = _checkpoint(tmp_path, "mixtral", sliding_window=4)
    check_decoder_family(reference, folder, tmp_path)


@pytest.mark.parametrize("variant", [
    dict(mlp_only_layers=[1], norm_topk_prob=False),              # a dense layer between two sparse ones
    dict(decoder_sparse_step=2, norm_topk_prob=True, qkv_bias=False),
])
def test_qwen2_moe_equals_transformers(tmp_path, variant):
    reference, folder = _checkpoint(tmp_path, "qwen2_moe", **variant)
    model = load_model(str(folder))
    dense = set(variant.get("mlp_only_layers", [])) | ({0, 2} if variant.get("decoder_sparse_step") == 2 else set())
    assert set(expert_layers(model.network)) == {0, 1, 2} - dense
    check_decoder_family(reference, folder, tmp_path)


def test_qwen2_moe_window_on_every_layer_as_eager_attention(tmp_path):
    """transformers' eager (and SDPA) Qwen2-MoE masks every layer with the window; only its flash-attention path
    reads max_window_layers. Its cached `generate` is wrong here (its DynamicCache keeps the last `sliding_window`
    keys but the mask is built for all of them), so the greedy tokens are compared with its uncached generate."""
    reference, folder = _checkpoint(tmp_path, "qwen2_moe", use_sliding_window=True, sliding_window=3,
                                    max_window_layers=2)
    model = load_model(str(folder))
    for texts in (TEXT, BATCH):
        ours = model.run(texts)
        assert_same_trace(ours, reference_outputs(reference, ours.input_ids, ours.attention_mask), ours.attention_mask)
    ids = model.encode(TEXT).input_ids
    with torch.no_grad():
        theirs = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                                    eos_token_id=None, pad_token_id=0, use_cache=False)[0, ids.shape[1]:].tolist()
    model.config.eos_token_id = None
    assert model.generate(TEXT, max_new_tokens=20) == theirs


@pytest.mark.parametrize("kind, scaling", [("mixtral", {"rope_type": "linear", "factor": 2.0}),
                                            ("qwen2_moe", {"rope_type": "yarn", "factor": 2.0})])
def test_scaled_rotary_equals_transformers(tmp_path, kind, scaling):
    reference, folder = _checkpoint(tmp_path, kind, rope_scaling=scaling)
    model = load_model(str(folder))
    assert model.config.rope_scaling["rope_type"] == scaling["rope_type"]
    ours = model.run(BATCH)
    assert_same_trace(ours, reference_outputs(reference, ours.input_ids, ours.attention_mask), ours.attention_mask)


@pytest.mark.parametrize("kind", ["mixtral", "qwen2_moe"])
def test_router_choices_equal_transformers_router_logits(tmp_path, kind):
    reference, folder = _checkpoint(tmp_path, kind, **({"mlp_only_layers": [1]} if kind == "qwen2_moe" else {}))
    model = load_model(str(folder))
    trace = model.run(BATCH)
    with torch.no_grad():
        theirs = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask, output_router_logits=True)
    router = trace.extras["router"]
    sparse = [choice for choice in router if choice is not None]
    assert len(router) == model.n_layers and len(sparse) == len(theirs.router_logits)
    if kind == "qwen2_moe":
        assert router[1] is None  # the dense layer
    real = trace.attention_mask.bool()
    B, T = trace.input_ids.shape
    k = model.network.blocks[0].mlp.top_k
    renormalise = kind == "mixtral" or reference.config.norm_topk_prob
    for ours, logits in zip(sparse, theirs.router_logits):
        logits = logits.view(B, T, -1)  # transformers flattens (B * T, E)
        torch.testing.assert_close(ours.logits[real], logits[real], atol=ATOL, rtol=0)
        weights, experts = torch.topk(torch.softmax(logits.float(), -1), k, dim=-1)
        if renormalise:
            weights = weights / weights.sum(-1, keepdim=True)
        assert torch.equal(ours.experts[real], experts[real])
        torch.testing.assert_close(ours.weights[real], weights[real], atol=ATOL, rtol=0)
    assert len({tuple(e) for e in sparse[0].experts[real].tolist()}) > 1  # the router does choose, per token


def test_sequence_classification_equals_transformers_and_reloads(tmp_path):
    folder = tmp_path / "cls"
    reference = make_decoder_checkpoint(tf.MixtralConfig, tf.MixtralForSequenceClassification, folder, num_labels=3,
                                        **MIXTRAL)
    model = load_model(str(folder))
    assert model.task == "sequence-classification"
    trace = model.run(BATCH)
    with torch.no_grad():
        theirs = reference(input_ids=trace.input_ids, attention_mask=trace.attention_mask).logits
    torch.testing.assert_close(trace.logits, theirs, atol=ATOL, rtol=0)
    model.save_pretrained(tmp_path / "saved")
    again = tf.MixtralForSequenceClassification.from_pretrained(tmp_path / "saved", attn_implementation="eager").eval()
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=trace.input_ids, attention_mask=trace.attention_mask).logits,
                                   theirs, atol=ATOL, rtol=0)


# ---------------------------------------------------------------- expert masks

@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("qwen")
    reference, folder = _checkpoint(tmp_path, "qwen2_moe", mlp_only_layers=[1])
    return reference, load_model(str(folder))


def _most_chosen(trace, layer: int) -> int:
    return int(torch.bincount(trace.extras["router"][layer].experts.flatten()).argmax())


def test_a_masked_expert_is_never_chosen_and_nothing_changes_outside(qwen):
    _, model = qwen
    before = model.run(BATCH)
    busiest = _most_chosen(before, 0)
    with model.mask_experts({0: [busiest]}):
        masked = model.run(BATCH)
    after = model.run(BATCH)
    assert (masked.extras["router"][0].experts != busiest).all()
    assert (before.extras["router"][0].experts == busiest).any()
    assert not torch.allclose(masked.hidden_states[1], before.hidden_states[1])
    # the router's logits are reported as the router computed them; only the choice avoids the expert
    torch.testing.assert_close(masked.extras["router"][0].logits, before.extras["router"][0].logits)
    for a, b in zip(after.hidden_states, before.hidden_states):
        assert torch.equal(a, b)
    assert torch.equal(after.extras["router"][0].experts, before.extras["router"][0].experts)


def test_masking_equals_transformers_without_that_expert_in_the_router(qwen):
    """The documented meaning: the expert's logit is -inf before softmax and top-k (transformers' gate, so edited)."""
    reference, model = qwen
    masked_ids = {0: [1, 3], 2: [0]}
    trace_ids = model.encode(BATCH)
    hooks = []
    for layer, experts in masked_ids.items():
        def drop(module, args, out, experts=experts):
            return out.index_fill(-1, torch.tensor(experts), float("-inf"))
        hooks.append(reference.model.layers[layer].mlp.gate.register_forward_hook(drop))
    try:
        with torch.no_grad():
            theirs = reference(input_ids=trace_ids.input_ids, attention_mask=trace_ids.attention_mask,
                               output_hidden_states=True, output_attentions=True)
    finally:
        for hook in hooks:
            hook.remove()
    with model.mask_experts({0: [1], 2: [0]}), model.mask_experts({0: [3]}):  # nested masks add up
        ours = model.run(BATCH)
    assert_same_trace(ours, theirs, ours.attention_mask)
    chosen = ours.extras["router"][0].experts
    assert not ((chosen == 1) | (chosen == 3)).any()


def test_masks_are_per_network_and_refuse_what_cannot_be_masked(qwen):
    _, model = qwen
    pruned = model.prune_heads({0: [0]})
    plain = pruned.run(TEXT)
    with model.mask_experts({0: [0, 1, 2]}):  # the pruned copy has its own expert modules: not masked
        assert torch.equal(pruned.run(TEXT).hidden_states[-1], plain.hidden_states[-1])
    with pytest.raises(HeadIndexError, match="Layer 1 has no experts"):
        with model.mask_experts({1: [0]}):
            pass
    with pytest.raises(HeadIndexError, match="no expert 5"):
        with model.mask_experts({0: [5]}):
            pass
    with pytest.raises(HeadIndexError, match="fewer than 2"):
        with model.mask_experts({0: [0, 1]}), model.mask_experts({0: [2, 3]}):
            pass


def test_hooks_see_the_router_and_can_reroute(qwen):
    _, model = qwen
    seen = {}

    def look(logits, name):
        seen[name] = logits.shape

    def force(ids, name):
        seen[name] = ids.shape
        return torch.zeros_like(ids) + torch.arange(ids.shape[-1])  # every token to experts 0 and 1

    plain = model.run(TEXT)
    with model.hooks({"blocks.0.mlp.hook_router_logits": look,
                      "blocks.0.mlp.hook_expert_ids": force}):
        forced = model.run(TEXT)
    T = plain.input_ids.shape[1]
    assert seen == {"blocks.0.mlp.hook_router_logits": (1, T, 5), "blocks.0.mlp.hook_expert_ids": (1, T, 2)}
    assert (forced.extras["router"][0].experts == torch.tensor([0, 1])).all()
    assert not torch.allclose(forced.hidden_states[1], plain.hidden_states[1])
    probs = forced.extras["router"][0].probabilities
    torch.testing.assert_close(forced.extras["router"][0].weights, probs[..., :2].to(forced.hidden_states[1].dtype))


def test_no_capture_records_no_routing(qwen):
    _, model = qwen
    ids = model.encode(TEXT).input_ids
    with torch.no_grad():
        assert model.forward(input_ids=ids, capture=False).router == []
        assert [c is None for c in model.forward(input_ids=ids).router] == [False, True, False]


def test_one_example_of_a_trace_keeps_its_own_routing(qwen):
    _, model = qwen
    trace = model.run(["a dog barked loudly and then ran away quickly .", "the cat sat ."])
    second = trace.example(1).extras["router"]
    assert second[1] is None  # the dense layer
    for whole, one in zip(trace.extras["router"], second):
        if whole is not None:
            assert torch.equal(one.experts, whole.experts[1:2]) and torch.equal(one.weights, whole.weights[1:2])


# ---------------------------------------------------------------- never silently wrong

@pytest.mark.parametrize("kind, key, value", [
    ("mixtral", "hidden_act", "mish"),
    ("mixtral", "partial_rotary_factor", 0.5),
    ("mixtral", "num_experts_per_tok", 9),
    ("mixtral", "rope_scaling", {"rope_type": "not-a-rope-type", "factor": 2.0}),
    ("qwen2_moe", "hidden_act", "mish"),
    ("qwen2_moe", "decoder_sparse_step", 0),
    ("qwen2_moe", "rope_scaling", {"rope_type": "not-a-rope-type", "factor": 2.0}),
])
def test_a_refused_value_names_its_key(kind, key, value):
    hf = CLASSES[kind][0](**(MIXTRAL if kind == "mixtral" else QWEN), vocab_size=64).to_dict()
    FAMILIES[kind].config_from_hf(hf)  # the unchanged config is accepted
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(f"{key}={value!r}")):
        FAMILIES[kind].config_from_hf(hf)


def test_expert_layers_are_expert_modules(qwen):
    _, model = qwen
    layers = expert_layers(model.network)
    assert set(layers) == {0, 2} and all(isinstance(m, ExpertMLP) and m.layer == i for i, m in layers.items())


# ---------------------------------------------------------------- the analyses on expert models

def test_importance_lens_and_attribution_run_through_the_experts(qwen):
    from analysis.attribution.text import attribute_text
    from analysis.head_importance import compute_head_importance
    from analysis.lens import logit_lens
    from analysis.metrics import make_eval_set

    _, model = qwen
    importance = compute_head_importance(model, make_eval_set(model, BATCH, None, batch_size=2), method="gradient")
    assert importance.scores.shape == (3, 6) and torch.isfinite(importance.scores).all()
    assert (importance.scores.sum(-1) > 0).all()  # every layer's heads matter to the loss, through the experts
    trace = model.run(TEXT)
    lens = logit_lens(model, trace, top_k=1)
    assert torch.equal(lens.top_ids[-1, :, 0], trace.logits[0].argmax(-1))
    ig = attribute_text(model, TEXT, methods=["integrated_gradients"]).results["integrated_gradients"]
    # routing is piecewise (a token switching between two tied experts jumps a little): complete within tolerance
    assert ig.converged and abs(ig.convergence_delta) <= 0.05 * abs(ig.output_difference) + 1e-5
