"""Logit lens and residual-stream analyses, checked against transformers and scikit-learn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.metrics.pairwise import cosine_similarity

from analysis.hidden_states import (layer_cosine_similarity, norms_frame, pca_projection, residual_norms,
                                    residual_stream, token_cosine_similarity)
from analysis.lens import has_lm_head, logit_lens, unembed
from models import load_model
from models.errors import InputError, UnsupportedArchitectureError
from tests.tiny_models import make_checkpoint

TEXT = "the cat sat on the mat and a dog barked ."


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lens-llama")
    reference = make_checkpoint("llama", folder)
    return reference, load_model(str(folder))


def reference_hidden(reference, trace):
    with torch.no_grad():
        return reference(input_ids=trace.input_ids, output_hidden_states=True)


def test_lens_matches_transformers_lm_head_on_every_layer(llama):
    reference, model = llama
    trace = model.run(TEXT)
    theirs = reference_hidden(reference, trace)
    lens = logit_lens(model, trace, top_k=3)
    assert lens.layers == list(range(model.n_layers + 1))
    for layer in range(model.n_layers):  # transformers' hidden_states[l] is the residual stream before the norm
        with torch.no_grad():
            logits = reference.lm_head(reference.model.norm(theirs.hidden_states[layer]))[0]  # (n, vocab)
        expected = logits.softmax(-1).topk(3, dim=-1)
        torch.testing.assert_close(lens.top_probs[layer], expected.values, atol=1e-5, rtol=0)
        assert torch.equal(lens.top_ids[layer], expected.indices)


def test_lens_at_the_last_layer_equals_the_model_logits(llama):
    _, model = llama
    trace = model.run(TEXT)
    torch.testing.assert_close(unembed(model, residual_stream(trace)[-1])[0], trace.logits[0], atol=1e-5, rtol=0)
    lens = logit_lens(model, trace, top_k=1)
    assert torch.equal(lens.top_ids[-1, :, 0], trace.logits[0].argmax(-1))


def test_lens_target_is_the_next_token_with_its_rank(llama):
    _, model = llama
    trace = model.run(TEXT)
    lens = logit_lens(model, trace, positions=[0, 3, len(trace.tokens[0]) - 1], top_k=2)
    ids = trace.input_ids[0]
    assert lens.target_ids.tolist() == [int(ids[1]), int(ids[4]), -1]
    probs = unembed(model, residual_stream(trace)[2, [0, 3]])[0].softmax(-1)  # (2, vocab)
    torch.testing.assert_close(lens.target_probs[2, :2], probs[[0, 1], ids[[1, 4]]])
    expected_rank = (probs[0] > probs[0, ids[1]]).sum()
    assert int(lens.target_ranks[2, 0]) == int(expected_rank)
    assert int(lens.target_ranks[2, 2]) == -1  # the last position has no next token
    frame = lens.to_frame()
    assert len(frame) == len(lens.layers) * 3 * 2
    table = lens.top1_table()
    assert table.shape == (model.n_layers + 1, 3) and table.iloc[-1, 0] == lens.top_tokens[-1][0][0]


def test_lens_needs_an_lm_head(tmp_path):
    make_checkpoint("bert", tmp_path)
    encoder = load_model(str(tmp_path))
    assert not has_lm_head(encoder)
    with pytest.raises(UnsupportedArchitectureError, match="no language-modelling head"):
        logit_lens(encoder, encoder.run(TEXT))


def test_lens_works_for_a_masked_lm(tmp_path):
    make_checkpoint("bert-mlm", tmp_path)
    model = load_model(str(tmp_path))
    trace = model.run(TEXT)
    lens = logit_lens(model, trace, top_k=1)
    assert torch.equal(lens.top_ids[-1, :, 0], trace.logits[0].argmax(-1))
    assert torch.equal(lens.target_ids, trace.input_ids[0])  # a masked LM predicts the token in place


def test_lens_rejects_bad_positions(llama):
    _, model = llama
    trace = model.run(TEXT)
    with pytest.raises(InputError, match="outside the input"):
        logit_lens(model, trace, positions=[99])
    with pytest.raises(InputError):
        logit_lens(model, trace, positions=[])


def test_residual_norms_match_transformers(llama):
    reference, model = llama
    trace = model.run(TEXT)
    theirs = reference_hidden(reference, trace)
    norms = residual_norms(trace)  # (L+1, n)
    for layer in range(model.n_layers):
        torch.testing.assert_close(norms[layer], theirs.hidden_states[layer][0].norm(dim=-1), atol=1e-4, rtol=1e-5)
    frame = norms_frame(trace)
    assert len(frame) == norms.numel() and frame["norm"].iloc[-1] == pytest.approx(float(norms[-1, -1]))


def test_cosine_similarities(llama):
    _, model = llama
    trace = model.run(TEXT)
    states = residual_stream(trace).numpy()  # (L+1, n, d)
    tokens = token_cosine_similarity(trace, layer=1)
    np.testing.assert_allclose(tokens.numpy(), cosine_similarity(states[1]), atol=1e-5)
    layers = layer_cosine_similarity(trace)
    expected = np.mean([cosine_similarity(states[:, t]) for t in range(states.shape[1])], axis=0)
    np.testing.assert_allclose(layers.numpy(), expected, atol=1e-5)
    one = layer_cosine_similarity(trace, position=2)
    np.testing.assert_allclose(one.numpy(), cosine_similarity(states[:, 2]), atol=1e-5)
    torch.testing.assert_close(torch.diagonal(layers), torch.ones(layers.shape[0]))


def test_pca_matches_scikit_learn_on_the_same_states(llama):
    _, model = llama
    trace = model.run(TEXT)
    projection = pca_projection(trace, layers=[0, 2], normalize=False)
    n = len(trace.tokens[0])
    assert len(projection.frame) == 2 * n
    assert list(projection.frame.columns) == ["layer", "position", "token", "pc1", "pc2"]
    states = residual_stream(trace)[[0, 2]].reshape(2 * n, -1).double().numpy()
    reference = PCA(n_components=2, svd_solver="full").fit(states)
    np.testing.assert_allclose(projection.explained_variance_ratio, reference.explained_variance_ratio_, rtol=1e-6)
    # components are defined up to sign: compare absolute coordinates
    np.testing.assert_allclose(np.abs(projection.frame[["pc1", "pc2"]].values), np.abs(reference.transform(states)), atol=1e-6)
    normalized = pca_projection(trace, positions=[1, 2, 3])
    assert set(normalized.frame["position"]) == {1, 2, 3} and len(normalized.frame) == 3 * (model.n_layers + 1)
    with pytest.raises(InputError):
        pca_projection(trace, layers=[0], positions=[1])
