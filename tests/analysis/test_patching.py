"""Activation and attribution patching against a reference written here with plain PyTorch hooks on
transformers' own tiny GPT-2, Llama and BERT classifier (same weights, no hook points of ours).

The reference runs the corrupted prompt once per patch, batch 1, with a forward (pre-)hook on the
transformers module that owns the activation:
  resid_pre  a pre-hook on decoder/encoder layer i replaces its input hidden state at one position
  attn_out   a hook on the attention module (GPT-2, Llama: its first output; BERT: attention.output.dense)
  mlp_out    a hook on the MLP (GPT-2, Llama: block.mlp; BERT: output.dense, before dropout and LayerNorm)
  head       a pre-hook on the output projection (c_proj / o_proj / attention.output.dense) replaces one
             head's d_head slice of its input at every position
"""
from __future__ import annotations

import pytest
import torch

from analysis.patching import (SITES, activation_patching, attribution_patching, patched_run, patching_experiment,
                               pearson, prepare_patching)
from models import load_model
from models.errors import HeadIndexError, InputError, UnsupportedArchitectureError
from tests.tiny_models import make_checkpoint

ATOL = 1e-4
CLEAN, CORRUPTED = "the cat sat on the mat and", "the dog sat on a mat and"
LM_ANSWER, LM_WRONG = "cat", "dog"
CLS_CLEAN, CLS_CORRUPTED = "i love this film", "i hate this film"
LABELS = {0: "negative", 1: "positive"}


@pytest.fixture(scope="module", params=["gpt2", "llama", "bert-cls"])
def pair(request, tmp_path_factory):
    kind = request.param
    folder = tmp_path_factory.mktemp(f"patch-{kind}")
    extra = dict(id2label=LABELS, label2id={v: k for k, v in LABELS.items()}) if kind == "bert-cls" else {}
    # a wider initialisation than transformers' 0.02 so patches move the metric by more than the tolerance
    reference = make_checkpoint(kind, folder, seed=1, initializer_range=0.2, **extra)
    return kind, reference, load_model(str(folder))


def prompts(kind):
    if kind == "bert-cls":
        return CLS_CLEAN, CLS_CORRUPTED, "positive", "negative"
    return CLEAN, CORRUPTED, LM_ANSWER, LM_WRONG


# ---------------------------------------------------------------------------- the reference, plain hooks
def modules(kind, reference, layer):
    """(layer module, attention-output module, MLP-output module, output projection) in transformers."""
    if kind == "gpt2":
        block = reference.transformer.h[layer]
        return block, block.attn, block.mlp, block.attn.c_proj
    if kind == "llama":
        block = reference.model.layers[layer]
        return block, block.self_attn, block.mlp, block.self_attn.o_proj
    block = reference.bert.encoder.layer[layer]  # BERT classifier or masked LM
    return block, block.attention.output.dense, block.output.dense, block.attention.output.dense


def reference_metric(kind, reference, ids, answer_id, wrong_id, position=-1):
    with torch.no_grad():
        logits = reference(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    row = logits[0] if kind == "bert-cls" else logits[0, position]
    return float(row[answer_id].double() - row[wrong_id].double())


def first(output):
    return output[0] if isinstance(output, tuple) else output


def reference_patching(kind, reference, clean_ids, corrupted_ids, site, answer_id, wrong_id, n_heads, n_layers=2,
                       layers=None, position=-1):
    """(n_layers, positions | heads) patched metrics, one transformers forward per patch; rows not in ``layers`` 0."""
    layers = list(range(n_layers)) if layers is None else layers
    T = clean_ids.shape[1]
    clean = {}  # layer -> the clean activation at this site

    def capture_hooks(layer):
        block, attn, mlp, proj = modules(kind, reference, layer)
        if site == "resid_pre":
            return block.register_forward_pre_hook(
                lambda m, args, kwargs: clean.__setitem__(layer, (args[0] if args else kwargs["hidden_states"]).clone()),
                with_kwargs=True)
        if site == "head":
            return proj.register_forward_pre_hook(lambda m, args: clean.__setitem__(layer, args[0].clone()))
        module = attn if site == "attn_out" else mlp
        return module.register_forward_hook(lambda m, args, out: clean.__setitem__(layer, first(out).clone()))

    handles = [capture_hooks(layer) for layer in layers]
    reference_metric(kind, reference, clean_ids, answer_id, wrong_id)
    for handle in handles:
        handle.remove()

    width = n_heads if site == "head" else T
    result = torch.zeros(n_layers, width, dtype=torch.float64)
    for layer in layers:
        block, attn, mlp, proj = modules(kind, reference, layer)
        for index in range(width):
            if site == "resid_pre":
                def pre(m, args, kwargs, layer=layer, index=index):
                    if args:
                        x = args[0].clone()
                        x[:, index] = clean[layer][:, index]
                        return (x, *args[1:]), kwargs
                    x = kwargs["hidden_states"].clone()
                    x[:, index] = clean[layer][:, index]
                    return args, {**kwargs, "hidden_states": x}
                handle = block.register_forward_pre_hook(pre, with_kwargs=True)
            elif site == "head":
                d_head = clean[layer].shape[-1] // n_heads

                def pre_proj(m, args, layer=layer, index=index, d_head=d_head):
                    x = args[0].clone()
                    x[..., index * d_head:(index + 1) * d_head] = clean[layer][..., index * d_head:(index + 1) * d_head]
                    return (x, *args[1:])
                handle = proj.register_forward_pre_hook(pre_proj)
            else:
                def post(m, args, out, layer=layer, index=index):
                    x = first(out).clone()
                    x[:, index] = clean[layer][:, index]
                    return (x, *out[1:]) if isinstance(out, tuple) else x
                handle = (attn if site == "attn_out" else mlp).register_forward_hook(post)
            try:
                result[layer, index] = reference_metric(kind, reference, corrupted_ids, answer_id, wrong_id, position)
            finally:
                handle.remove()
    return result


# ---------------------------------------------------------------------------- exact patching
@pytest.mark.parametrize("site", SITES)
def test_activation_patching_equals_plain_hooks_on_transformers(pair, site):
    kind, reference, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    ours = activation_patching(model, clean, corrupted, site, answer, wrong)
    T = len(setup.clean_tokens)
    assert ours.shape == ((2, 4) if site == "head" else (2, T))
    theirs = reference_patching(kind, reference, model.encode(clean).input_ids, model.encode(corrupted).input_ids,
                                site, setup.answer_id, setup.wrong_id, n_heads=4)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    # the patches do something, so the comparison above could have failed
    assert float((theirs - theirs.mean()).abs().max()) > 10 * ATOL


@pytest.mark.parametrize("site", ["resid_pre", "head"])
def test_a_masked_lm_is_read_at_its_mask_token(tmp_path_factory, site):
    folder = tmp_path_factory.mktemp(f"patch-mlm-{site}")
    reference = make_checkpoint("bert-mlm", folder, seed=1, initializer_range=0.2)
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.add_special_tokens(["[MASK]"])  # so "[MASK]" in a text is the mask token (it is in the vocabulary)
    tokenizer.save(str(folder / "tokenizer.json"))
    model = load_model(str(folder))
    clean, corrupted = "the cat sat on the [MASK] .", "the dog sat on the [MASK] ."
    setup = prepare_patching(model, clean, corrupted, "mat", "dog")
    assert setup.clean_tokens[setup.read_position] == "[MASK]" and setup.read_position < setup.n_positions - 2
    ours = activation_patching(model, clean, corrupted, site, "mat", "dog")
    theirs = reference_patching("bert-mlm", reference, model.encode(clean).input_ids,
                                model.encode(corrupted).input_ids, site, setup.answer_id, setup.wrong_id, n_heads=4,
                                position=setup.read_position)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def test_metric_reads_the_answer_and_wrong_logits(pair):
    kind, reference, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    result = patching_experiment(model, clean, corrupted, answer, wrong, sites=["resid_pre"], exact=False,
                                 attribution=False)
    ids = model.encode(clean).input_ids
    assert result.clean_metric == pytest.approx(reference_metric(kind, reference, ids, setup.answer_id,
                                                                 setup.wrong_id), abs=ATOL)
    if kind == "bert-cls":  # label names are the classifier's outputs
        assert (setup.answer_id, setup.wrong_id) == (1, 0) and setup.read_position is None


@pytest.mark.parametrize("site", SITES)
def test_patching_clean_into_clean_changes_nothing(pair, site):
    kind, _, model = pair
    clean, _, answer, wrong = prompts(kind)
    result = patching_experiment(model, clean, clean, answer, wrong, sites=[site], exact=True, attribution=False)
    values = result.exact[site]
    torch.testing.assert_close(values, torch.full_like(values, result.clean_metric), atol=1e-5, rtol=0)


def test_patching_every_position_of_the_residual_stream_restores_the_clean_metric(pair):
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    for layer in (0, 1):
        run = patched_run(model, clean, corrupted, "resid_pre", answer, wrong, layer=layer, index=None)
        assert abs(run.clean_metric - run.corrupted_metric) > 10 * ATOL  # the prompts do differ
        assert run.metric == pytest.approx(run.clean_metric, abs=1e-5)
        assert run.restored == pytest.approx(1.0, abs=1e-4)


def test_a_patched_cell_run_alone_equals_the_batched_map(pair):
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    table = activation_patching(model, clean, corrupted, "attn_out", answer, wrong)
    heads = activation_patching(model, clean, corrupted, "head", answer, wrong)
    one = patched_run(model, clean, corrupted, "attn_out", answer, wrong, layer=1, index=2)
    head = patched_run(model, clean, corrupted, "head", answer, wrong, layer=0, index=3)
    assert one.metric == pytest.approx(float(table[1, 2]), abs=1e-5)
    assert head.metric == pytest.approx(float(heads[0, 3]), abs=1e-5)
    assert set(one.prediction.columns) >= {"output", "clean", "corrupted", "patched"}
    assert one.prediction["patched"].is_monotonic_decreasing


def test_batch_size_does_not_change_the_numbers(pair):
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    one = activation_patching(model, clean, corrupted, "resid_pre", answer, wrong, batch_size=1)
    three = activation_patching(model, clean, corrupted, "resid_pre", answer, wrong, batch_size=3)
    everything = activation_patching(model, clean, corrupted, "resid_pre", answer, wrong, batch_size=10_000)
    # float32 sums in another order: equal to float rounding (the metrics are ~1-10)
    torch.testing.assert_close(one, three, atol=1e-5, rtol=0)
    torch.testing.assert_close(one, everything, atol=1e-5, rtol=0)


@pytest.mark.parametrize("site", SITES)
def test_sharing_the_unpatched_prefix_gives_the_same_numbers(pair, site):
    """Each layer's patched runs compute the layers below it once (one row, fanned out by a hook); running
    every row from the embeddings gives the same numbers."""
    from analysis.patching import _activation_patching
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    shared = _activation_patching(model, setup, site, [0, 1], None, None, share_prefix=True)
    plain = _activation_patching(model, setup, site, [0, 1], None, None, share_prefix=False)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)


def test_layers_limit_what_is_patched(pair):
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    full = activation_patching(model, clean, corrupted, "mlp_out", answer, wrong)
    part = activation_patching(model, clean, corrupted, "mlp_out", answer, wrong, layers=[1])
    assert torch.isnan(part[0]).all()
    torch.testing.assert_close(part[1], full[1], atol=1e-6, rtol=0)


def test_pruned_heads_are_blank_and_the_others_unchanged(tmp_path):
    make_checkpoint("gpt2", tmp_path, seed=1, initializer_range=0.2)
    model = load_model(str(tmp_path))
    pruned = model.prune_heads({0: [1]})
    heads = activation_patching(pruned, CLEAN, CORRUPTED, "head", LM_ANSWER, LM_WRONG)
    assert heads.shape == (2, 4)
    assert torch.isnan(heads[0, 1]) and torch.isfinite(heads[0, [0, 2, 3]]).all() and torch.isfinite(heads[1]).all()
    with model.mask_heads({0: [1]}):  # pruning equals masking, so the maps agree
        masked = activation_patching(model, CLEAN, CORRUPTED, "head", LM_ANSWER, LM_WRONG)
    torch.testing.assert_close(heads[0, [0, 2, 3]], masked[0, [0, 2, 3]], atol=1e-5, rtol=0)
    torch.testing.assert_close(heads[1], masked[1], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------- attribution patching
@pytest.fixture(scope="module", params=[0, 1])
def near_linear_gpt2(request, tmp_path_factory):
    """A tiny GPT-2 initialised with initializer_range 0.05, where every patch effect is small.

    How it was picked: a sweep of initializer_range over 0.05, 0.1, 0.15, 0.2, 0.3 (seeds 0 and 1, GPT-2 and
    Llama, these prompts) measured the largest patch effect |metric(patched) - metric(corrupted)| per site and
    the correlation of attribution with exact patching. At 0.05 on GPT-2 the effects are 0.004-0.024 logits
    (far above float32 noise, ~1e-6, and far below 1) and the correlations 0.98-1.00 on every site; from 0.15
    up the effects reach 0.1-3 logits and some sites fall to 0.5 or below (attention output at 0.2: -0.26),
    as a first-order method should. (transformers' default 0.02 makes MLP effects ~1e-5: float noise.)
    The test re-measures the effect size instead of trusting the sweep.
    """
    folder = tmp_path_factory.mktemp(f"attr-gpt2-{request.param}")
    make_checkpoint("gpt2", folder, seed=request.param, initializer_range=0.05)
    return load_model(str(folder))


@pytest.mark.parametrize("site", SITES)
def test_attribution_patching_correlates_with_exact_patching_where_effects_are_small(near_linear_gpt2, site):
    model = near_linear_gpt2
    exact = activation_patching(model, CLEAN, CORRUPTED, site, LM_ANSWER, LM_WRONG)
    approx = attribution_patching(model, CLEAN, CORRUPTED, site, LM_ANSWER, LM_WRONG)
    assert approx.shape == exact.shape
    result = patching_experiment(model, CLEAN, CORRUPTED, LM_ANSWER, LM_WRONG, sites=[site], exact=False)
    effects = exact - result.corrupted_metric
    assert float(effects.abs().max()) < 0.05          # small effects: the regime the method is for
    assert float(effects.abs().max()) > 1e-3          # but well above float32 noise
    assert pearson(exact, approx) > 0.9


@pytest.mark.parametrize("site, layer, index", [("resid_pre", 1, 3), ("mlp_out", 0, 1), ("head", 0, 2)])
def test_each_attribution_term_is_the_directional_derivative(pair, site, layer, index):
    """Away from the small-effect regime the estimate is poor, but each term must still be exactly
    (a_clean - a_corrupted) . grad: compare with a central finite difference along that direction."""
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    setup = prepare_patching(model, clean, corrupted, answer, wrong)
    name = {"resid_pre": "blocks.{}.hook_resid_pre", "mlp_out": "blocks.{}.hook_mlp_out",
            "head": "blocks.{}.attn.hook_z"}[site].format(layer)
    kept = {}
    with model.hooks({name: lambda x, _n: kept.__setitem__("clean", x.clone())}):
        model.run(clean)

    def metric_at(eps):
        def move(x, _n):
            x = x.clone()
            if site == "head":
                x[:, :, index] += eps * (kept["clean"][:, :, index] - x[:, :, index])
            else:
                x[:, index] += eps * (kept["clean"][:, index] - x[:, index])
            return x
        with model.hooks({name: move}):
            logits = model.run(corrupted).logits.double()
        row = logits[0] if logits.dim() == 2 else logits[0, -1]
        return float(row[setup.answer_id] - row[setup.wrong_id])

    eps = 1e-2
    derivative = (metric_at(eps) - metric_at(-eps)) / (2 * eps)
    result = patching_experiment(model, clean, corrupted, answer, wrong, sites=[site], exact=False)
    term = float(result.attribution[site][layer, index]) - result.corrupted_metric
    assert term == pytest.approx(derivative, abs=2e-3, rel=2e-2)
    assert abs(term) > 1e-3


# ---------------------------------------------------------------------------- bad input
def test_prompts_of_different_lengths_are_refused(pair):
    kind, _, model = pair
    clean, _, answer, wrong = prompts(kind)
    with pytest.raises(InputError, match="same number of tokens"):
        activation_patching(model, clean, clean + " and then", "resid_pre", answer, wrong)


def test_multi_token_answer_is_refused(pair):
    kind, _, model = pair
    if kind == "bert-cls":
        with pytest.raises(InputError, match="not one of the classifier's labels"):
            activation_patching(model, CLS_CLEAN, CLS_CORRUPTED, "resid_pre", "very positive", "negative")
        return
    with pytest.raises(InputError, match="is 2 tokens"):
        activation_patching(model, CLEAN, CORRUPTED, "resid_pre", "the cat", LM_WRONG)


def test_layer_out_of_range_and_unknown_site_are_refused(pair):
    kind, _, model = pair
    clean, corrupted, answer, wrong = prompts(kind)
    with pytest.raises(HeadIndexError, match="out of range"):
        activation_patching(model, clean, corrupted, "resid_pre", answer, wrong, layers=[2])
    with pytest.raises(HeadIndexError, match="out of range"):
        patched_run(model, clean, corrupted, "mlp_out", answer, wrong, layer=-1)
    with pytest.raises(InputError, match="Unknown patching site"):
        activation_patching(model, clean, corrupted, "resid_post", answer, wrong)
    with pytest.raises(InputError, match="are the same"):
        activation_patching(model, clean, corrupted, "resid_pre", answer, answer)


def test_a_model_without_an_output_is_refused(tmp_path):
    make_checkpoint("bert", tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match="no output to compare"):
        activation_patching(load_model(str(tmp_path)), CLS_CLEAN, CLS_CORRUPTED, "resid_pre", "a", "b")


# ---------------------------------------------------------------------------- a real checkpoint
@pytest.mark.slow
def test_smollm2_patching_equals_plain_hooks_on_transformers():
    """Three layers of SmolLM2 (Llama-type, grouped-query attention) against transformers on the same weights."""
    import transformers as tf

    model = load_model("smollm2")
    from models.embedded import EMBEDDED
    reference = tf.AutoModelForCausalLM.from_pretrained(EMBEDDED["smollm2"](), attn_implementation="eager").eval()
    clean, corrupted = "The capital of France is the city of", "The capital of Italy is the city of"
    setup = prepare_patching(model, clean, corrupted, " Paris", " Rome")
    layers = [0, 14, 29]
    ours = activation_patching(model, clean, corrupted, "resid_pre", " Paris", " Rome", layers=layers)
    heads = activation_patching(model, clean, corrupted, "head", " Paris", " Rome", layers=layers)
    clean_ids, corrupted_ids = model.encode(clean).input_ids, model.encode(corrupted).input_ids
    full = reference_patching("llama", reference, clean_ids, corrupted_ids, "resid_pre", setup.answer_id,
                              setup.wrong_id, n_heads=9, n_layers=30, layers=layers)
    full_heads = reference_patching("llama", reference, clean_ids, corrupted_ids, "head", setup.answer_id,
                                    setup.wrong_id, n_heads=9, n_layers=30, layers=layers)
    torch.testing.assert_close(ours[layers], full[layers], atol=1e-3, rtol=0)
    torch.testing.assert_close(heads[layers], full_heads[layers], atol=1e-3, rtol=0)
    assert float(ours[0].max() - ours[0].min()) > 1.0  # the country token matters at layer 0


@pytest.mark.slow
def test_minilm_sentiment_patches_with_its_label_names():
    """The embedded classifier: at layer 0 the two prompts differ only at the changed word's position (the
    embeddings are per position), so patching that one cell restores the clean metric exactly."""
    model = load_model("minilm-sentiment")
    clean, corrupted = "I loved this film.", "I hated this film."
    names = [model.labels[i] for i in sorted(model.labels)]
    positive = next(n for n in names if n.lower().startswith("pos"))
    negative = next(n for n in names if n.lower().startswith("neg"))
    result = patching_experiment(model, clean, corrupted, positive, negative, sites=["resid_pre", "head"])
    assert result.clean_metric > 0 > result.corrupted_metric  # the classifier reads the two prompts apart
    (changed,) = result.setup.differing_positions
    exact = result.exact["resid_pre"]
    assert float(exact[0, changed]) == pytest.approx(result.clean_metric, abs=1e-4)
    others = [p for p in range(exact.shape[1]) if p != changed]
    torch.testing.assert_close(exact[0, others], torch.full((len(others),), result.corrupted_metric,
                                                            dtype=torch.float64), atol=1e-4, rtol=0)
    assert result.correlation("resid_pre") > 0.5
