"""The Vocabulary page on tiny models, driven by widget keys; every number is checked against the core."""
from __future__ import annotations

import pandas as pd
import pytest

import models
from analysis.vocabulary import nearest_neighbours, prediction_change
from tests.app.page_helpers import captions, open_page

TOKENS = "cat.dog, <sep2>"
TEXT = "the cat.dog sat <sep2>"


def frame(at, *columns: str) -> pd.DataFrame:
    """The page's dataframe with these columns (st.dataframe keys do not reach AppTest)."""
    for element in at.dataframe:
        if list(element.value.columns)[: len(columns)] == list(columns):
            return element.value
    raise KeyError(f"no table with columns {columns}")


@pytest.fixture
def page(tiny_models):
    at = open_page("vocabulary.py")
    at.text_input(key="vocabulary_tokens").set_value(TOKENS).run()
    at.text_area(key="vocabulary_text").set_value(TEXT).run()
    return at


def test_added_tokens_tokenization_and_neighbours(page):
    at = page
    assert not at.exception and not at.error
    assert [h.value for h in at.header] == ["Vocabulary"]
    grown = models.load_model("minilm").add_tokens(["cat.dog", "<sep2>"])
    added = frame(at, "token", "id", "old pieces")
    assert added["token"].tolist() == ["cat.dog", "<sep2>"]
    assert added["id"].tolist() == list(grown.vocabulary_change.added.values())
    assert added["old pieces"].tolist() == ["cat . dog", "[UNK] [UNK] [UNK]"]  # the tiny vocabulary lacks < and >
    markdown = [m.value for m in at.markdown]
    assert "**Before:** `[CLS]` `the` `cat` `.` `dog` `sat` `[UNK]` `[UNK]` `[UNK]` `[SEP]`" in markdown
    assert "**After:** `[CLS]` `the` `cat.dog` `sat` `<sep2>` `[SEP]`" in markdown
    assert "10 tokens before, 6 after" in captions(at)
    shown = frame(at, "token", "id", "rank", "neighbour")
    expected = nearest_neighbours(grown, grown.vocabulary_change.added, k=5)
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected, check_dtype=False)
    at.slider(key="vocabulary_k").set_value(2).run()
    assert len(frame(at, "token", "id", "rank", "neighbour")) == 2 * 2


def test_effect_on_a_classifier(page):
    at = page
    at.selectbox(key="model_choice").set_value("minilm-sentiment").run()
    assert not at.exception and not at.error
    shown = frame(at, "output", "before", "after", "change")
    model = models.load_model("minilm-sentiment")
    expected = prediction_change(model, model.add_tokens(["cat.dog", "<sep2>"]), TEXT)
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected, check_dtype=False, atol=1e-6)
    assert len(shown) == 2 and shown["change"].abs().max() > 0


def test_special_tokens_and_init_strategies(page):
    at = page
    at.checkbox(key="vocabulary_special").check().run()
    at.radio(key="vocabulary_init").set_value("random").run()
    at.number_input(key="vocabulary_seed").set_value(3).run()
    assert not at.exception and not at.error
    grown = models.load_model("minilm").add_tokens(["cat.dog", "<sep2>"], special=True, init="random", seed=3)
    assert frame(at, "token", "id", "old pieces")["initialised as"].tolist() == ["random", "random"]
    expected = nearest_neighbours(grown, grown.vocabulary_change.added, k=5)
    pd.testing.assert_frame_equal(frame(at, "token", "id", "rank", "neighbour").reset_index(drop=True), expected,
                                  check_dtype=False)


def test_existing_and_repeated_tokens_are_reported(page):
    at = page
    at.text_input(key="vocabulary_tokens").set_value("cat, cat.dog, cat.dog").run()
    assert not at.exception
    summary = captions(at)[1]
    assert summary.startswith("Added 1 token") and "'cat' (id" in summary and "repeated, added once: 'cat.dog'" in summary


@pytest.mark.parametrize("tokens, message", [("cat.dog, , x", "position 1 are empty"), ("", "No tokens")])
def test_bad_token_lists_show_an_error_not_a_crash(page, tokens, message):
    at = page
    at.text_input(key="vocabulary_tokens").set_value(tokens).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)


def test_keep_adds_a_session_model_and_selects_it(page):
    at = page
    at.button(key="vocabulary_keep").click().run()
    assert not at.exception
    assert at.selectbox(key="model_choice").value == "minilm + 2 tokens"
    assert "minilm + 2 tokens" in at.session_state["session_models"]
    grown = at.session_state["session_models"]["minilm + 2 tokens"]
    assert grown.tokenizer.token_to_id("cat.dog") is not None
    assert any(c.startswith("minilm + 2 tokens: ") for c in captions(at))


def test_code_to_reproduce_runs_and_agrees(page):
    at = page
    code = at.code[0].value
    scope: dict = {}
    exec(compile(code.replace("grown.save_pretrained('grown-model/')", ""), "<page code>", "exec"), scope)
    assert scope["change"].after == ["[CLS]", "the", "cat.dog", "sat", "<sep2>", "[SEP]"]
    pd.testing.assert_frame_equal(scope["neighbours"], frame(at, "token", "id", "rank", "neighbour").reset_index(drop=True),
                                  check_dtype=False)
