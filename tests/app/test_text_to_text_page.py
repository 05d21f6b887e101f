"""A text-to-text model in the app: the Attention page's alignment view, and every other page says plainly what it
cannot read instead of failing. The embedded translator is small enough to load for real (no tiny stand-in)."""
from __future__ import annotations

import numpy as np
import pytest

import models
from analysis.alignment import alignment, stack_pattern
from analysis.attention import MEAN_OF_LAYER
from app.page_registry import PAGES
from models.embedded import EMBEDDED_MODELS
from tests.app.page_helpers import captions, chart_traces, chart_z, decode, open_page

# found by capability, as the app finds it: the embedded model that reads text with an encoder and a decoder
TRANSLATOR = next(name for name, record in EMBEDDED_MODELS.items()
                  if record.modality == "text" and record.task == "seq2seq-lm")


@pytest.fixture(scope="module")
def model():
    return models.load_model(TRANSLATOR)


def test_attention_page_shows_output_and_alignment_of_the_trace(model):
    at = open_page(query={"model": TRANSLATOR})
    at.text_area(key="attention_source").set_value("4071").run()
    assert not at.exception and not at.error
    markdown = [m.value for m in at.markdown]
    assert "**Source:** `4` `0` `7` `1` `</s>`" in markdown
    assert any(m.startswith("**Output:** four thousand seventy one") for m in markdown)
    trace = model.run("4071")
    heads = model.stack_head_ids()
    np.testing.assert_allclose(chart_z(at, "attention_cross_heatmap"), alignment(trace, 0).numpy(), atol=1e-6)
    # the heatmap's rows are the written tokens, its columns the source tokens
    shown = chart_traces(at, "attention_cross_heatmap")[0]
    assert list(shown["y"]) == ["0:four", "1:thousand", "2:seventy", "3:one", "4:&lt;/s&gt;"]  # escaped: plotly reads labels as HTML
    assert list(shown["x"]) == ["0:4", "1:0", "2:7", "3:1", "4:&lt;/s&gt;"]
    # one head of another layer, and the full (H + 1)-panel grid of that layer
    at.slider(key="attention_cross_layer").set_value(1).run()
    at.selectbox(key="attention_cross_head").set_value(1).run()
    assert not at.exception and not at.error
    np.testing.assert_allclose(chart_z(at, "attention_cross_heatmap"),
                               alignment(trace, 1, 1, heads["cross"]).numpy(), atol=1e-6)
    grid = chart_traces(at, "attention_cross_grid")
    assert len(grid) == model.n_heads + 1
    for head, panel in enumerate(grid[:-1]):
        np.testing.assert_allclose(decode(panel["z"]), alignment(trace, 1, head).numpy(), atol=1e-6)
    np.testing.assert_allclose(decode(grid[-1]["z"]), alignment(trace, 1, MEAN_OF_LAYER).numpy(), atol=1e-6)
    strongest = [c for c in captions(at) if c.startswith("Strongest source per written token (layer 1, head 1)")]
    assert strongest and "seventy ← 7" in strongest[0]
    # encoder and decoder self-attention
    at.slider(key="attention_encoder_layer").set_value(2).run()
    np.testing.assert_allclose(chart_z(at, "attention_encoder_heatmap"),
                               stack_pattern(trace, "encoder", 2).numpy(), atol=1e-6)
    np.testing.assert_allclose(chart_z(at, "attention_decoder_heatmap"),
                               stack_pattern(trace, "decoder", 0).numpy(), atol=1e-6)
    assert not at.exception and not at.error


def test_unknown_source_tokens_are_named(model):
    at = open_page(query={"model": TRANSLATOR})
    at.text_area(key="attention_source").set_value("twelve cats").run()
    assert not at.exception
    assert any("source tokens are <unk>" in w.value for w in at.warning)


def test_code_to_reproduce_prints_the_alignment(model, capsys):
    at = open_page(query={"model": TRANSLATOR})
    at.text_area(key="attention_source").set_value("47").run()
    code = at.code[0].value
    exec(compile(code, "<snippet>", "exec"), {})
    printed = capsys.readouterr().out
    assert "output: forty seven" in printed and "('seven', '7')" in printed


@pytest.mark.parametrize("entry", PAGES[1:], ids=lambda e: e.file)
def test_every_other_page_stays_up(entry, model):
    at = open_page(entry.file, query={"model": TRANSLATOR})
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
