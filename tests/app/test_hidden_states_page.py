"""The Hidden states page on tiny models: logit lens, norms, cosine similarities, PCA, code."""
from __future__ import annotations

import numpy as np
import pytest

import models
from analysis.hidden_states import layer_cosine_similarity, pca_projection, residual_norms, token_cosine_similarity
from analysis.lens import logit_lens
from tests.app.page_helpers import captions, chart_traces, chart_z, decode, open_page

TEXT = "the cat sat on the mat and a dog barked ."


def test_encoder_says_plainly_there_is_no_logit_lens(tiny_models):
    at = open_page("hidden_states.py")
    assert not at.exception and not at.error
    assert [h.value for h in at.header] == ["Hidden states"]
    assert any("has no language-modelling head" in i.value for i in at.info)
    assert not [c for c in at.get("plotly_chart") if "hidden_lens_figure" in c.proto.id]


def test_logit_lens_of_a_causal_lm(tiny_models):
    at = open_page("hidden_states.py", query={"model": "smollm2", "text": TEXT})
    assert not at.exception and not at.error
    model = models.load_model("smollm2")
    trace = model.run(TEXT)
    n = len(trace.tokens[0])
    lens = logit_lens(model, trace, positions=range(max(0, n - 16), n), top_k=3)
    figure = chart_traces(at, "hidden_lens_figure")[0]
    assert figure["text"] == [[cell[0] for cell in row] for row in lens.top_tokens]
    np.testing.assert_allclose(chart_z(at, "hidden_lens_figure"), lens.top_probs[..., 0].numpy(), atol=1e-6)
    target = at.dataframe[0].value
    np.testing.assert_allclose(target.to_numpy(float), lens.target_probs.numpy(), atol=1e-6)
    assert target.shape == (model.n_layers + 1, len(lens.positions))
    at.slider(key="hidden_lens_start").set_value(2).run()
    at.slider(key="hidden_lens_top_k").set_value(1).run()
    moved = logit_lens(model, trace, positions=range(2, min(n, 18)), top_k=1)
    assert chart_traces(at, "hidden_lens_figure")[0]["text"] == [[c[0] for c in row] for row in moved.top_tokens]
    assert any(c.startswith(f"Positions 2–{min(n, 18) - 1} of {n}") for c in captions(at))


def test_norms_cosines_and_pca(tiny_models):
    at = open_page("hidden_states.py")
    at.text_area(key="hidden_free").set_value(TEXT).run()
    trace = models.load_model("minilm").run(TEXT)
    np.testing.assert_allclose(chart_z(at, "hidden_norms_heatmap"), residual_norms(trace).numpy(), rtol=1e-6)
    np.testing.assert_allclose(chart_z(at, "hidden_cos_layers"), layer_cosine_similarity(trace).numpy(), atol=1e-6)
    at.selectbox(key="hidden_cos_position").set_value(2).run()
    at.slider(key="hidden_cos_layer").set_value(1).run()
    np.testing.assert_allclose(chart_z(at, "hidden_cos_layers"), layer_cosine_similarity(trace, position=2).numpy(), atol=1e-6)
    np.testing.assert_allclose(chart_z(at, "hidden_cos_tokens"), token_cosine_similarity(trace, 1).numpy(), atol=1e-6)
    at.slider(key="hidden_pca_layers").set_value((1, 2)).run()
    at.checkbox(key="hidden_pca_normalize").uncheck().run()
    assert not at.exception and not at.error
    projection = pca_projection(trace, layers=[1, 2], normalize=False)
    points = chart_traces(at, "hidden_pca_figure")[-1]
    shown = np.stack([decode(points["x"]).astype(float), decode(points["y"]).astype(float)], 1)
    np.testing.assert_allclose(np.abs(shown), np.abs(projection.frame[["pc1", "pc2"]].to_numpy()), atol=1e-6)
    n = len(trace.tokens[0])
    assert any(c.startswith(f"{2 * n} states (2 layers × {n} tokens)") for c in captions(at))


def test_code_to_reproduce_runs_and_matches(tiny_models):
    at = open_page("hidden_states.py", query={"model": "smollm2", "text": TEXT})
    at.slider(key="hidden_cos_layer").set_value(1).run()
    namespace: dict = {}
    exec(at.code[0].value, namespace)  # noqa: S102 - the page's own snippet, on the patched loader
    np.testing.assert_allclose(namespace["norms"].numpy(), chart_z(at, "hidden_norms_heatmap"), rtol=1e-6)
    np.testing.assert_allclose(namespace["token_cos"].numpy(), chart_z(at, "hidden_cos_tokens"), atol=1e-6)
    assert namespace["lens"].top1_table().iloc[-1].tolist() == chart_traces(at, "hidden_lens_figure")[0]["text"][-1]


def test_one_token_input_does_not_break_the_page(tiny_models):
    at = open_page("hidden_states.py", query={"model": "smollm2", "text": "cat"})
    assert not at.exception and not at.error
    assert any("1 tokens" in c for c in captions(at))


@pytest.mark.parametrize("page", ["attention.py", "hidden_states.py"])
def test_navigation_lists_every_registered_page(tiny_models, page):
    from app.page_registry import PAGES

    at = open_page(page)
    assert not at.exception
    assert {p.file for p in PAGES} >= {"attention.py", "hidden_states.py"}
