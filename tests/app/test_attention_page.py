"""The Attention page, driven as a person would by widget keys, on tiny models.

Every number the page shows is compared with the analysis functions run on the same tiny
model outside the app, so a page that renders the wrong layer, head or input fails.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import models
from analysis.attention import MEAN_OF_LAYER, head_pattern, head_statistics, rollout_per_layer, special_tokens_of
from app.view_plan import MODEL_VIEW, SPARSE_VIEW
from tests.app.page_helpers import captions, chart_z, iframe_html, open_page

TEXT = "the cat sat on the mat ."


def open_tab(at, label: str):
    """Click a tab of the page: only the open tab runs (issue 18), as in the browser."""
    at.session_state["attention_tab"] = label
    return at.run()


def bertviz_params(html: str) -> dict:
    start = html.index("const params = ") + len("const params = ")
    return json.JSONDecoder().raw_decode(html, start)[0]


def test_attention_page_renders_tokens_and_heatmap(tiny_models):
    at = open_page()
    assert not at.exception
    assert [h.value for h in at.header] == ["Attention"]
    assert "tokens" in at.caption[0].value
    at.text_area(key="attention_free").set_value(TEXT).run()
    assert not at.exception
    assert "`[CLS]` `the` `cat` `sat` `on` `the` `mat` `.` `[SEP]`" in [m.value for m in at.markdown]
    at.slider(key="attention_layer").set_value(1).run()
    at.selectbox(key="attention_head").set_value(2).run()
    assert not at.exception and not at.error
    assert not at.get("plotly_chart")  # the closed tabs draw nothing
    open_tab(at, "Heatmap")
    trace = models.load_model("minilm").run(TEXT)
    np.testing.assert_allclose(chart_z(at, "attention_heatmap"), head_pattern(trace, 1, 2).numpy(), atol=1e-6)
    assert any(c.startswith("Layer 1, head 2: strongest weight") for c in captions(at))


def test_mean_of_layer_heatmap_and_statistics_table(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    model = models.load_model("minilm")
    trace = model.run(TEXT)
    open_tab(at, "Heatmap")
    np.testing.assert_allclose(chart_z(at, "attention_heatmap"), head_pattern(trace, 0, MEAN_OF_LAYER).numpy(), atol=1e-6)
    open_tab(at, "Per-head statistics")
    shown = at.dataframe[0].value
    expected = head_statistics(trace, special_tokens_of(model), causal=False)
    assert list(shown.columns) == list(expected.columns) and len(shown) == model.n_layers * model.n_heads
    np.testing.assert_allclose(shown.iloc[:, 2:].to_numpy(float), expected.iloc[:, 2:].to_numpy(float), atol=1e-9)
    at.selectbox(key="attention_stat").set_value("to_special").run()
    grid = chart_z(at, "attention_stat_grid")
    np.testing.assert_allclose(grid, expected["to_special"].to_numpy().reshape(model.n_layers, model.n_heads), atol=1e-9)
    best = expected.loc[expected["to_special"].idxmax()]
    assert any(f"Highest to_special: L{int(best['layer'])}.H{int(best['head'])}" in c for c in captions(at))


def test_rollout_tab(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    open_tab(at, "Rollout")
    at.slider(key="attention_rollout_residual").set_value(0.3).run()
    at.slider(key="attention_layer").set_value(1).run()
    trace = models.load_model("minilm").run(TEXT)
    expected = rollout_per_layer(trace.attentions, residual_weight=0.3)[1].numpy()
    np.testing.assert_allclose(chart_z(at, "attention_rollout_heatmap"), expected, atol=1e-6)
    assert at.selectbox(key="attention_rollout_query").value == 0  # an encoder's [CLS]
    at.selectbox(key="attention_rollout_query").set_value(3).run()
    top = int(expected[3].argmax())
    assert any(f"position 3:sat draws most on {top}:" in c for c in captions(at))


def test_bertviz_views_are_offline_and_follow_the_plan(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    html = iframe_html(at)
    assert "cdnjs" not in html and "<script src" not in html.lower()
    params = bertviz_params(html)
    assert params["include_layers"] == [0, 1] and len(params["attention"][0]["attn"][0][0]) == 9
    assert any(c.startswith("bertviz head view, every layer") for c in captions(at))
    at.radio(key="attention_view").set_value(MODEL_VIEW).run()
    model_params = bertviz_params(iframe_html(at))
    assert model_params["display_mode"] == "light" and len(model_params["attention"][0]["attn"]) == 2  # 2 layers
    assert any(c == "bertviz model view: every layer and head." for c in captions(at))
    at.radio(key="attention_view").set_value(SPARSE_VIEW).run()
    at.slider(key="attention_top_k").set_value(2).run()
    html = iframe_html(at)
    assert "<title>Sparse head view</title>" in html and "cdnjs" not in html
    sparse = json.JSONDecoder().raw_decode(html, html.index("const params = ") + len("const params = "))[0]
    assert sparse["k"] == 2 and len(sparse["keys"]) == 4 and len(sparse["keys"][0]) == 9 * 2
    assert any(c.startswith("Sparse view: layer 0, each query's 2 strongest keys") for c in captions(at))
    assert not at.exception and not at.error


def test_sentence_pair_marks_sentence_b(tiny_models):
    at = open_page()
    at.radio(key="attention_mode").set_value("Sentence pair").run()
    at.text_input(key="attention_first").set_value("who was it ?").run()
    at.text_input(key="attention_second").set_value("it was me .").run()
    assert not at.exception and not at.error
    assert "`[CLS]` `who` `was` `it` `?` `[SEP]` `it` `was` `me` `.` `[SEP]`" in [m.value for m in at.markdown]
    assert bertviz_params(iframe_html(at))["attention"][1]["name"] == "Sentence A -> Sentence A"


def test_ablating_heads_changes_later_layers_only_in_this_run(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    at.multiselect(key="attention_ablate").select("L0.H1").select("L0.H3").run()
    at.slider(key="attention_layer").set_value(1).run()
    assert not at.exception and not at.error
    assert "masked: L0.H1, L0.H3" in at.caption[0].value
    model = models.load_model("minilm")
    with model.mask_heads({0: [1, 3]}):
        masked = model.run(TEXT)
    plain = model.run(TEXT)
    open_tab(at, "Heatmap")
    shown = chart_z(at, "attention_heatmap")
    np.testing.assert_allclose(shown, head_pattern(masked, 1, MEAN_OF_LAYER).numpy(), atol=1e-6)
    assert not np.allclose(shown, head_pattern(plain, 1, MEAN_OF_LAYER).numpy(), atol=1e-6)
    code = open_tab(at, "Code to reproduce").code[0].value
    assert "with model.mask_heads({0: [1, 3]}):" in code


def test_pruned_copy_belongs_to_this_session_and_the_shared_model_is_untouched(tiny_models):
    from app.model_cache import shared_model

    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    at.multiselect(key="attention_ablate").select("L1.H0").run()
    at.button(key="attention_prune").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="model_choice").value == "minilm − 1 head"
    assert at.multiselect(key="attention_ablate").value == []
    at.slider(key="attention_layer").set_value(1).run()
    assert at.selectbox(key="attention_head").options == ["mean of layer", "1", "2", "3"]
    assert 'load_model(\'minilm\').prune_heads({1: [0]})' in open_tab(at, "Code to reproduce").code[0].value
    shared = shared_model("minilm")
    assert shared.config.pruned_heads == {} and shared.head_ids()[1] == [0, 1, 2, 3]
    other = open_page()  # a second session sees no pruned model
    assert "minilm − 1 head" not in other.selectbox(key="model_choice").options


def test_causal_model_offers_no_pairs_and_rolls_out_from_the_last_token(tiny_models):
    at = open_page(query={"model": "smollm2", "text": TEXT})
    assert not at.exception and not at.error
    assert at.selectbox(key="model_choice").value == "smollm2"
    assert "Sentence pair" not in at.radio(key="attention_mode").options
    n = len(models.load_model("smollm2").run(TEXT).tokens[0])
    assert open_tab(at, "Rollout").selectbox(key="attention_rollout_query").value == n - 1
    stats = open_tab(at, "Per-head statistics").dataframe[0].value
    assert stats["to_previous"].between(0, 1).all()


def test_empty_text_shows_a_clear_error_and_page_stays_up(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value("   ").run()
    assert not at.exception
    assert any("Empty text" in e.value for e in at.error)


def test_unknown_hub_id_offline_is_explained(tiny_models):
    at = open_page()
    at.selectbox(key="model_choice").set_value("Hugging Face hub id…").run()
    at.text_input(key="model_hub_id").set_value("nobody/no-such-model-xyz").run()
    assert not at.exception
    assert any("could not be fetched" in e.value for e in at.error)


def test_switching_models_keeps_widgets_valid(tiny_models, tmp_path):
    """A layer, head or ablation chosen on one model must not crash the page on a smaller one."""
    import transformers

    from tests.tiny_models import save_tokenizer, word_tokenizer

    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=20, max_position_embeddings=64, pad_token_id=0)
    transformers.BertModel(config).save_pretrained(tmp_path)  # 1 layer x 2 heads: smaller than minilm's stand-in
    special = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    save_tokenizer(word_tokenizer(special, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"), tmp_path,
                   {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]"})
    at = open_page()
    at.slider(key="attention_layer").set_value(1).run()
    at.selectbox(key="attention_head").set_value(3).run()
    at.multiselect(key="attention_ablate").select("L1.H3").run()
    at.selectbox(key="model_choice").set_value("Local folder…").run()
    at.text_input(key="model_folder").set_value(str(tmp_path)).run()
    assert not at.exception and not at.error
    assert "Layer: 0 (the only one)" in captions(at)  # no slider for a single layer
    assert not [s for s in at.slider if s.key == "attention_layer"]
    assert at.selectbox(key="attention_head").value == "mean of layer"
    assert at.multiselect(key="attention_ablate").value == []


@pytest.mark.parametrize("view", [SPARSE_VIEW])
def test_code_to_reproduce_gives_the_numbers_on_the_page(tiny_models, view):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    at.slider(key="attention_layer").set_value(1).run()
    at.selectbox(key="attention_head").set_value(3).run()
    at.multiselect(key="attention_ablate").select("L0.H0").run()
    namespace: dict = {}
    exec(open_tab(at, "Code to reproduce").code[0].value, namespace)  # noqa: S102 - the page's own snippet, on the patched loader
    np.testing.assert_allclose(namespace["weights"].numpy(), chart_z(open_tab(at, "Heatmap"), "attention_heatmap"),
                               atol=1e-6)
    np.testing.assert_allclose(namespace["rollout"].numpy(), chart_z(open_tab(at, "Rollout"), "attention_rollout_heatmap"),
                               atol=1e-6)
    shown_stats = open_tab(at, "Per-head statistics").dataframe[0].value
    np.testing.assert_allclose(namespace["stats"].iloc[:, 2:].to_numpy(float), shown_stats.iloc[:, 2:].to_numpy(float))
    assert isinstance(namespace["trace"].attentions[0], torch.Tensor)


@pytest.mark.parametrize("page, box", [("attention.py", "attention_free"), ("hidden_states.py", "hidden_free")])
def test_truncation_names_the_workbench_cap_apart_from_the_model_limit(tiny_models, monkeypatch, page, box):
    """Issue 18, bug 9: smollm2's warning said "truncated to the model's limit of 1024"; the model allows 8,192."""
    import models.workbench_model as workbench_model

    allowed = models.load_model("smollm2").config.max_positions
    long_text = " ".join(["the cat sat on the mat ."] * 20)  # 140 words: past the tiny model's positions too
    at = open_page(page, query={"model": "smollm2"})
    at.text_area(key=box).set_value(long_text).run()
    assert [w.value for w in at.warning] == [f"The text has 140 tokens; truncated to the model's limit of "
                                             f"{allowed} tokens."]
    monkeypatch.setattr(workbench_model, "DEFAULT_MAX_TOKENS", 16)  # the workbench's cap below the model's limit
    at.text_area(key=box).set_value(long_text + " .").run()
    assert not at.exception
    # the core's own sentence (models.tokenization.truncation_warning), shown as it is
    assert [w.value for w in at.warning] == [f"The text has 141 tokens; truncated to the workbench's cap of 16 "
                                             f"tokens (the model allows {allowed})."]


def _sink_pattern(n: int = 236) -> np.ndarray:
    """Causal attention at a long input as real models give it: the first token takes most of every row."""
    weights = np.zeros((n, n))
    for i in range(n):
        weights[i, : i + 1] = 0.1 / (i + 1)                       # a little everywhere
        weights[i, max(i - 1, 0)] += 0.05                          # a previous-token head's diagonal
        weights[i, 0] += 1.0 - weights[i].sum()                    # the rest on the first token
    return weights


def _drawn(fig) -> np.ndarray:
    """Where each cell sits along the heatmap's colour bar, 0 (white) to 1 (darkest)."""
    trace = fig.data[0]
    z, low, high = np.asarray(trace.z, dtype=float), float(trace.zmin), float(trace.zmax)
    return (np.clip(z, low, high) - low) / (high - low)


def test_long_input_heatmap_picks_a_readable_scale_by_default():
    """Issue 18, bug 6: at 236 tokens the first token dominates a linear 0-1 scale and the heatmap is almost white."""
    from app.plots import attention_heatmap

    weights = _sink_pattern()
    n, present = len(weights), weights > 0
    tokens = [f"t{i}" for i in range(n)]
    diagonal = (np.arange(2, n), np.arange(1, n - 1))  # the previous-token head's cells
    linear = _drawn(attention_heatmap(weights, tokens, scale="linear"))
    assert (linear[present] >= 0.1).mean() < 0.05 and linear[diagonal].max() < 0.1  # the white picture
    fig = attention_heatmap(weights, tokens)  # the default
    shown = _drawn(fig)
    assert fig.layout.meta["colour_scale"] == "clipped" and fig.data[0].zmax < weights.max()
    assert shown[diagonal].min() >= 0.5                                   # the diagonal reads as a line
    np.testing.assert_allclose(np.asarray(fig.data[0].customdata, dtype=float), weights)  # hover: the real weights
    log = attention_heatmap(weights, tokens, scale="log")
    assert _drawn(log)[diagonal].min() >= 0.5 and log.data[0].colorbar.ticktext[-1] == "1"
    small = np.full((4, 4), 0.25)
    assert attention_heatmap(small, list("abcd")).layout.meta["colour_scale"] == "linear"  # nothing to clip


def test_attention_page_offers_clipped_and_log_scales(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    scale = open_tab(at, "Heatmap").radio(key="attention_scale")
    assert scale.value == "auto" and scale.options == ["Auto (readable)", "Linear 0 to max",
                                                       "Clipped at the 99th percentile", "Logarithmic"]
    scale.set_value("log").run()
    assert not at.exception and not at.error
    weights = head_pattern(models.load_model("minilm").run(TEXT), 0, MEAN_OF_LAYER).numpy()
    np.testing.assert_allclose(chart_z(at, "attention_heatmap"), np.log10(weights), atol=1e-5)
    assert any(c.startswith("Logarithmic colour scale") for c in captions(at))
    open_tab(at, "Rollout")  # the rollout follows the choice, made in the heatmap's tab
    assert any(c.startswith("Logarithmic colour scale") for c in captions(at))
