"""The bridge over transformers (models/bridge.py) on architectures with no native family: BLOOM (ALiBi, fused
query/key/value, `dense` output projection), GPT-BigCode (multi-query, `c_proj`) and CodeGen (`out_proj` without a
bias). Tiny scrambled checkpoints are made by transformers inside the test; transformers is the reference.

The head-mask reference is written here, independent of the bridge: a plain torch pre-hook on transformers' own
output projection (its path spelled out per architecture) that scales each head's slice of the input.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from analysis.head_importance import compute_gradient_importance  # noqa: E402
from analysis.metrics import IGNORE, make_eval_set  # noqa: E402
from analysis.vocabulary import nearest_neighbours  # noqa: E402
from models import UnsupportedArchitectureError, WeightFileError, load_model  # noqa: E402
from models.bridge import BridgedModel, NeedsNativeFamilyError  # noqa: E402
from models.families import FAMILIES  # noqa: E402
from models.hooks import active_hook_count  # noqa: E402
from tests.models.decoder_parity import BATCH, TEXT, make_decoder_checkpoint, reference_outputs  # noqa: E402

ATOL = 1e-5
N_LAYERS, N_HEADS, D_MODEL = 2, 4, 32

# architecture -> (config class, model class, config fields, output projection of layer {i}, as transformers names it)
ARCHITECTURES = {
    "bloom": (transformers.BloomConfig, transformers.BloomForCausalLM,
              dict(hidden_size=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS), "transformer.h.{i}.self_attention.dense"),
    "gpt_bigcode": (transformers.GPTBigCodeConfig, transformers.GPTBigCodeForCausalLM,
                    dict(n_embd=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS, n_positions=64, multi_query=True),
                    "transformer.h.{i}.attn.c_proj"),
    "codegen": (transformers.CodeGenConfig, transformers.CodeGenForCausalLM,
                dict(n_embd=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS, n_positions=64, n_ctx=64, rotary_dim=4),
                "transformer.h.{i}.attn.out_proj"),
}


def make(kind: str, folder: Path, **overrides):
    config_class, model_class, fields, _ = ARCHITECTURES[kind]
    return make_decoder_checkpoint(config_class, model_class, folder, **{**fields, **overrides})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """kind -> (folder, transformers' model)"""
    made = {}
    for kind in ARCHITECTURES:
        folder = tmp_path_factory.mktemp(f"bridge-{kind}")
        made[kind] = (folder, make(kind, folder))
    return made


@pytest.fixture(scope="module")
def bloom(checkpoints):
    folder, reference = checkpoints["bloom"]
    return load_model(str(folder)), reference


@contextlib.contextmanager
def scaled_o_proj_inputs(reference, kind: str, scales: dict[int, torch.Tensor]):
    """The reference head mask: each layer's output projection sees its input with head h's slice times scale[h]
    ((H,) for the batch, or (B, H) per example). Plain torch hooks on transformers' model, removed on exit."""
    handles = []
    for layer, scale in scales.items():
        projection = reference.get_submodule(ARCHITECTURES[kind][3].format(i=layer))

        def scale_heads(module, args, scale=scale):
            x = args[0]  # (B, T, H * dh)
            B, T, width = x.shape
            per_example = scale.reshape(-1, N_HEADS)  # (B or 1, H)
            heads = x.view(B, T, N_HEADS, width // N_HEADS) * per_example[:, None, :, None]
            return (heads.view(B, T, width),)

        handles.append(projection.register_forward_pre_hook(scale_heads))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def assert_equal_outputs(ours, theirs, atol: float = ATOL) -> None:
    """Every hidden state, attention pattern and logit, at every position (it is the same forward)."""
    assert len(ours.hidden_states) == len(theirs.hidden_states) == N_LAYERS + 1
    for a, b in zip(ours.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)
    assert len(ours.attentions) == len(theirs.attentions) == N_LAYERS
    for a, b in zip(ours.attentions, theirs.attentions):
        torch.testing.assert_close(a, b, atol=atol, rtol=0)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=atol, rtol=0)


def test_an_architecture_without_a_native_family_opens_through_the_bridge(bloom):
    model, _ = bloom
    assert "bloom" not in FAMILIES  # the point of the test: if BLOOM becomes native, pick another architecture
    assert isinstance(model, BridgedModel) and not model.is_native
    assert model.task == "causal-lm" and model.can_generate and model.modality == "text"
    assert (model.n_layers, model.n_heads, model.config.d_head) == (N_LAYERS, N_HEADS, D_MODEL // N_HEADS)
    assert model.network.layout.projection_paths == ("self_attention.dense",) * N_LAYERS
    assert sorted(model.hook_points) == sorted(f"blocks.{i}.{p}" for i in range(N_LAYERS)
                                               for p in ("hook_resid_pre", "hook_resid_post", "attn.hook_z"))
    assert "through transformers" in repr(model)


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_hidden_states_and_attentions_equal_transformers(checkpoints, kind):
    folder, reference = checkpoints[kind]
    model = load_model(str(folder))
    assert isinstance(model, BridgedModel)
    single = model.run(TEXT)
    assert single.tokens == [TEXT.split()]
    assert_equal_outputs(single, reference_outputs(reference, single.input_ids, single.attention_mask))
    batch = model.run(BATCH)
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()  # right-padded
    assert batch.tokens == [s.split() for s in BATCH]
    assert_equal_outputs(batch, reference_outputs(reference, batch.input_ids, batch.attention_mask))
    # the residual stream before the final norm is the last block's output
    assert batch.resid_final.shape == batch.hidden_states[-1].shape
    deferred = model.run(BATCH, capture="deferred")  # computed at once on the bridge: the same numbers
    for a, b in zip(deferred.attentions, batch.attentions):
        assert torch.equal(a, b)
    fast = model.run(BATCH, capture=False)  # no patterns; hidden states still, as on native models
    assert fast.attentions == ()
    for a, b in zip(fast.hidden_states, batch.hidden_states):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", list(ARCHITECTURES))
def test_head_mask_equals_zeroing_the_output_projection_input(checkpoints, kind):
    folder, reference = checkpoints[kind]
    model = load_model(str(folder))
    spec = {0: [1, 3], 1: {0: 0.5, 2: 0.0}}
    scales = {0: torch.tensor([1.0, 0.0, 1.0, 0.0]), 1: torch.tensor([0.5, 1.0, 0.0, 1.0])}
    enc = model.encode(BATCH)
    with model.mask_heads(spec):
        masked = model.run(BATCH)
    with scaled_o_proj_inputs(reference, kind, scales):
        theirs = reference_outputs(reference, enc.input_ids, enc.attention_mask)
    for a, b in zip(masked.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(masked.logits, theirs.logits, atol=ATOL, rtol=0)
    for layer, (a, b) in enumerate(zip(masked.attentions, theirs.attentions)):
        # reported as transformers 4.x reports a head_mask: each head's pattern scaled too
        torch.testing.assert_close(a, b * scales[layer][None, :, None, None], atol=ATOL, rtol=0)
    # ... which is transformers' own head_mask on these architectures
    head_mask = torch.stack([scales[0], scales[1]])  # (layers, heads)
    with torch.no_grad():
        own = reference(input_ids=enc.input_ids, attention_mask=enc.attention_mask, head_mask=head_mask,
                        output_attentions=True, output_hidden_states=True)
    assert_equal_outputs(masked, own)
    # nothing stays masked after the context
    assert_equal_outputs(model.run(BATCH), reference_outputs(reference, enc.input_ids, enc.attention_mask))


def test_per_example_head_scales_in_forward(bloom):
    model, reference = bloom
    enc = model.encode(BATCH)
    scales = {0: torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.2, 1.0, 1.0, 0.0]]), 1: torch.tensor([1.0, 1.0, 0.0, 1.0])}
    with torch.no_grad():
        out = model.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask, head_scales=scales)
    with scaled_o_proj_inputs(reference, "bloom", scales):
        theirs = reference_outputs(reference, enc.input_ids, enc.attention_mask)
    for a, b in zip(out.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.logits, theirs.logits, atol=ATOL, rtol=0)
    with model.mask_heads({1: [0]}):  # a context mask and forward's scales multiply
        with torch.no_grad():
            both = model.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask, head_scales=scales)
    with scaled_o_proj_inputs(reference, "bloom", {0: scales[0], 1: scales[1] * torch.tensor([0.0, 1, 1, 1])}):
        theirs = reference_outputs(reference, enc.input_ids, enc.attention_mask)
    torch.testing.assert_close(both.logits, theirs.logits, atol=ATOL, rtol=0)


def test_gradient_head_importance_equals_the_reference_gradients(bloom):
    model, reference = bloom
    texts = [*BATCH, TEXT, "i love this film", "the dog ran away quickly and then sat"]
    data = make_eval_set(model, texts, batch_size=3)
    result = compute_gradient_importance(model, data)

    sums, examples = torch.zeros(N_LAYERS, N_HEADS, dtype=torch.float64), 0
    for batch in data.batches:
        gates = {layer: torch.ones(batch.size, N_HEADS, requires_grad=True) for layer in range(N_LAYERS)}
        with scaled_o_proj_inputs(reference, "bloom", gates):
            logits = reference(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
        targets = batch.input_ids.masked_fill(batch.attention_mask == 0, IGNORE)[:, 1:]  # (B, T-1)
        token_loss = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE, reduction="none")
        scored = (targets != IGNORE).sum(-1)  # (B,)
        loss = token_loss.sum(-1) / scored.clamp_min(1)  # (B,) each example's mean token loss
        grads = torch.autograd.grad((loss * (scored > 0)).sum(), [gates[layer] for layer in range(N_LAYERS)])
        for layer, grad in enumerate(grads):
            sums[layer] += grad.abs().sum(0).double()
        examples += int((scored > 0).sum())
    raw = sums / examples
    assert result.n_examples == examples == len(texts)
    torch.testing.assert_close(result.details["raw"], raw, atol=1e-7, rtol=1e-5)
    normalized = raw / raw.norm(dim=1, keepdim=True)
    torch.testing.assert_close(result.scores, normalized, atol=1e-7, rtol=1e-5)
    assert (raw > 0).all()


def test_hooks_fire_inside_the_context_only(bloom):
    model, reference = bloom
    torch_hooks = [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in reference.modules()]
    ours_before = [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in model.network.modules()]
    seen: dict[str, torch.Tensor] = {}

    def record(x, name):
        seen[name] = x.clone()

    plain = model.run(BATCH)
    with model.hooks({"blocks.*": record}):
        assert active_hook_count() == 3 * N_LAYERS
        hooked = model.run(BATCH)
    assert active_hook_count() == 0
    assert sorted(seen) == sorted(model.hook_points)
    B, T = plain.input_ids.shape
    for layer in range(N_LAYERS):
        assert torch.equal(seen[f"blocks.{layer}.hook_resid_pre"], plain.hidden_states[layer])
        assert seen[f"blocks.{layer}.attn.hook_z"].shape == (B, T, N_HEADS, D_MODEL // N_HEADS)
    assert torch.equal(seen[f"blocks.0.hook_resid_post"], plain.hidden_states[1])
    assert torch.equal(seen[f"blocks.{N_LAYERS - 1}.hook_resid_post"], plain.resid_final)
    for a, b in zip(hooked.hidden_states, plain.hidden_states):  # a hook that returns None changes nothing
        assert torch.equal(a, b)

    seen.clear()
    model.run(BATCH)
    assert not seen  # gone after the context

    with pytest.raises(RuntimeError, match="inside"):  # and gone after an exception too
        with model.hooks({"blocks.0.attn.hook_z": record}):
            raise RuntimeError("inside")
    assert active_hook_count() == 0
    # the torch hooks were registered once, when the model was wrapped; none are added or left by a context
    assert [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in model.network.modules()] == ours_before
    assert [(len(m._forward_pre_hooks), len(m._forward_hooks)) for m in reference.modules()] == torch_hooks


def test_a_hook_that_edits_is_applied(bloom):
    model, _ = bloom

    def zero_head_2(z, name):
        z = z.clone()
        z[:, :, 2] = 0
        return z

    with model.hooks({"blocks.1.attn.hook_z": zero_head_2}):
        edited = model.run(BATCH)
    with model.mask_heads({1: [2]}):
        masked = model.run(BATCH)
    torch.testing.assert_close(edited.logits, masked.logits, atol=1e-6, rtol=0)

    def add_one(x, name):
        return x + 1

    with model.hooks({"blocks.0.hook_resid_post": add_one}):
        shifted = model.run(TEXT)
    with model.hooks({"blocks.1.hook_resid_pre": add_one}):
        shifted_pre = model.run(TEXT)
    torch.testing.assert_close(shifted.hidden_states[1], model.run(TEXT).hidden_states[1] + 1, atol=1e-6, rtol=0)
    torch.testing.assert_close(shifted.logits, shifted_pre.logits, atol=1e-6, rtol=0)


def test_greedy_generation_equals_transformers_with_masks_active(bloom):
    model, reference = bloom
    ids = model.encode(TEXT).input_ids

    def theirs() -> list[int]:
        with torch.no_grad():
            out = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                                     eos_token_id=None, pad_token_id=0)
        return out[0, ids.shape[1]:].tolist()

    model.config.eos_token_id = None  # both sides run every step
    try:
        plain = model.generate(TEXT, max_new_tokens=12)
        assert plain == theirs() and len(plain) == 12
        with model.mask_heads({0: [0, 1], 1: [3]}):
            masked = model.generate(TEXT, max_new_tokens=12)
        with scaled_o_proj_inputs(reference, "bloom", {0: torch.tensor([0.0, 0, 1, 1]), 1: torch.tensor([1.0, 1, 1, 0])}):
            assert masked == theirs()
        new, trace = model.generate_traced(TEXT, max_new_tokens=5)
        assert new == plain[:5] and trace.input_ids[0].tolist() == ids[0].tolist() + new
    finally:
        model.config.eos_token_id = reference.config.eos_token_id


def test_what_needs_a_native_family_says_so(bloom, tmp_path):
    model, _ = bloom
    attempts = {
        "prune_heads": lambda: model.prune_heads({0: [1]}),
        "add_tokens": lambda: model.add_tokens(["zebra"]),
        "with_head": lambda: model.with_head("sequence-classification", labels=["a", "b"]),
        "derive": lambda: model.derive(model.network, model.config),
        "mask_experts": lambda: model.mask_experts({0: [1]}),
        "read_positions": lambda: model.forward(input_ids=torch.tensor([[1, 2]]), read_positions=torch.tensor([1])),
        "family_record": lambda: model.family_record,
        "nearest_neighbours": lambda: nearest_neighbours(model, [1, 2]),  # reads our token embedding
    }
    for what, attempt in attempts.items():
        with pytest.raises(NeedsNativeFamilyError) as error:
            attempt()
        message = str(error.value)
        assert "needs a native family" in message and "'bloom'" in message, what
        assert all(name in message for name in FAMILIES), what
    assert isinstance(NeedsNativeFamilyError("x"), UnsupportedArchitectureError)
    # saving an (unpruned) bridged model is transformers' own save; it reloads through the bridge, equal
    saved = model.save_pretrained(tmp_path / "saved")
    again = load_model(str(saved))
    assert isinstance(again, BridgedModel)
    for a, b in zip(again.run(BATCH).hidden_states, model.run(BATCH).hidden_states):
        assert torch.equal(a, b)


def test_a_bare_body_opens_without_logits(tmp_path):
    reference = make_decoder_checkpoint(transformers.BloomConfig, transformers.BloomModel, tmp_path,
                                        hidden_size=D_MODEL, n_layer=N_LAYERS, n_head=N_HEADS)
    model = load_model(str(tmp_path))
    assert isinstance(model, BridgedModel) and model.task is None and not model.can_generate
    trace = model.run(BATCH)
    assert trace.logits is None
    theirs = reference_outputs(reference, trace.input_ids, trace.attention_mask)
    for a, b in zip(trace.hidden_states, theirs.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def _config_of(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_an_architecture_transformers_does_not_know_is_still_refused(checkpoints, tmp_path):
    folder, _ = checkpoints["bloom"]
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    _config_of(tmp_path, model_type="made_up_transformer", architectures=["MadeUpForCausalLM"])
    with pytest.raises(UnsupportedArchitectureError) as error:
        load_model(str(tmp_path))
    message = str(error.value)
    assert "'made_up_transformer'" in message and "does not know it" in message
    assert all(name in message for name in ("bert", "gpt2", "llama"))  # the loader's list of supported types


def test_without_transformers_the_error_says_to_install_it(checkpoints, monkeypatch):
    folder, _ = checkpoints["bloom"]
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` now raises ImportError
    with pytest.raises(UnsupportedArchitectureError) as error:
        load_model(str(folder))
    message = str(error.value)
    assert "'bloom'" in message and "transformers is not installed" in message and "pip install" in message


def test_refused_when_the_output_projection_is_not_called_as_a_module(tmp_path):
    # BLOOM with tensor-parallel slicing multiplies by the projection's weight directly: hooks could not apply
    make("bloom", tmp_path, pretraining_tp=2, slow_but_exact=True)
    with pytest.raises(UnsupportedArchitectureError, match="'bloom'.*output projection of layer 0.*not called"):
        load_model(str(tmp_path))


def test_refused_when_the_blocks_cannot_be_found(tmp_path):
    # an encoder-decoder with no native family (umT5: T5 with a bias per layer): transformers knows it, the
    # bridge opens one-stack models only
    make_decoder_checkpoint(transformers.UMT5Config, transformers.UMT5ForConditionalGeneration, tmp_path,
                            d_model=D_MODEL, d_kv=8, d_ff=37, num_layers=N_LAYERS, num_heads=N_HEADS,
                            decoder_start_token_id=0)
    with pytest.raises(UnsupportedArchitectureError, match="'umt5'.*one-stack"):
        load_model(str(tmp_path))


def test_a_checkpoint_too_large_is_refused_before_transformers_allocates(checkpoints, tmp_path):
    folder, _ = checkpoints["bloom"]
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    _config_of(tmp_path, n_layer=10_000_000)  # a tiny weight file, a config that asks for terabytes
    with pytest.raises(WeightFileError, match="would need about"):
        load_model(str(tmp_path))


def test_missing_weights_are_refused_not_initialised_at_random(checkpoints, tmp_path):
    from safetensors.torch import load_file, save_file
    folder, _ = checkpoints["bloom"]
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    state = load_file(str(folder / "model.safetensors"))
    dropped = next(k for k in state if k.endswith("h.1.self_attention.dense.weight"))
    save_file({k: v for k, v in state.items() if k != dropped}, str(tmp_path / "model.safetensors"),
              metadata={"format": "pt"})
    with pytest.raises(WeightFileError, match="self_attention.dense.weight"):
        load_model(str(tmp_path))
