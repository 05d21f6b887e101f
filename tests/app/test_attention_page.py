"""The Attention page, driven as a person would by widget keys, on a tiny model."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from pathlib import Path

APP = str(Path(__file__).resolve().parents[2] / "app" / "main.py")


def test_attention_page_renders_tokens_and_heatmap(tiny_models):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert [h.value for h in at.header] == ["Attention"]
    assert "6 tokens" in at.caption[0].value or "tokens" in at.caption[0].value
    at.text_area(key="attention_free").set_value("the cat sat on the mat .").run()
    assert not at.exception
    assert "`[CLS]` `the` `cat` `sat` `on` `the` `mat` `.` `[SEP]`" in [m.value for m in at.markdown]
    at.slider(key="attention_layer").set_value(1).run()
    at.selectbox(key="attention_head").set_value(2).run()
    assert not at.exception and not at.error


def test_empty_text_shows_a_clear_error_and_page_stays_up(tiny_models):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.text_area(key="attention_free").set_value("   ").run()
    assert not at.exception
    assert any("Empty text" in e.value for e in at.error)


def test_unknown_hub_id_offline_is_explained(tiny_models):
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.selectbox(key="model_choice").set_value("Hugging Face hub id…").run()
    at.text_input(key="model_hub_id").set_value("nobody/no-such-model-xyz").run()
    assert not at.exception
    assert any("could not be fetched" in e.value for e in at.error)
