"""What a person typed and chose survives a visit to another page (issue 18, bug 1), on tiny models.

Streamlit drops a widget's value when a run does not draw it; the pages keep theirs with
``app.state.keep``. A widget that comes back must also tell the browser its value: a box the
browser draws from scratch shows the widget's default unless the server sends ``set_value``.
"""
from __future__ import annotations

import pytest

from app.view_plan import MODEL_VIEW
from tests.app.page_helpers import browser_shows, open_page
from tests.app.test_vision_audio_page import tiny_media, tiny_media_folders  # noqa: F401 - fixtures

LONG = " ".join(["the cat sat on the mat ."] * 8)  # a long text for the tiny models (64 positions)


def test_text_view_head_and_layer_survive_a_visit_to_images_and_audio(tiny_media):  # noqa: F811
    at = open_page()
    at.text_area(key="attention_free").set_value(LONG).run()
    at.slider(key="attention_layer").set_value(1).run()
    at.selectbox(key="attention_head").set_value(2).run()
    at.radio(key="attention_view").set_value(MODEL_VIEW).run()
    assert not at.exception and not at.error
    at.switch_page("../pages/vision_audio.py").run()
    assert [h.value for h in at.header] == ["Images & audio"] and not at.exception
    at.switch_page("../pages/attention.py").run()
    assert not at.exception and not at.error
    assert at.text_area(key="attention_free").value == LONG
    assert browser_shows(at.text_area(key="attention_free")) == LONG
    assert at.slider(key="attention_layer").value == 1 and browser_shows(at.slider(key="attention_layer")) == "1"
    assert at.selectbox(key="attention_head").value == 2 and browser_shows(at.selectbox(key="attention_head")) == "2"
    assert at.radio(key="attention_view").value == MODEL_VIEW
    assert browser_shows(at.radio(key="attention_view")) == MODEL_VIEW
    assert any(c.startswith("bertviz model view") for c in (c.value for c in at.caption))
    assert at.caption[0].value.startswith(f"{2 + 7 * 8} tokens")  # the page ran on the long text, not the default


def test_the_text_typed_on_one_page_is_where_the_next_page_starts(tiny_models):
    at = open_page()
    at.text_area(key="attention_free").set_value(LONG).run()
    at.switch_page("../pages/hidden_states.py").run()
    assert not at.exception and not at.error
    assert at.text_area(key="hidden_free").value == LONG


@pytest.mark.parametrize("page", ["hidden_states.py", "heads.py"])
def test_each_text_page_keeps_its_own_settings(tiny_models, page):
    at = open_page(page, query={"model": "smollm2"})
    box = "hidden_free" if page == "hidden_states.py" else "heads_free"
    at.text_area(key=box).set_value("the dog sat .").run()
    if page == "hidden_states.py":
        at.slider(key="hidden_cos_layer").set_value(1).run()
    else:
        at.selectbox(key="heads_method").set_value("entropy").run()
    at.switch_page("../pages/attention.py").run()
    at.switch_page("../pages/" + page).run()
    assert not at.exception and not at.error
    assert at.text_area(key=box).value == "the dog sat ." == browser_shows(at.text_area(key=box))
    if page == "hidden_states.py":
        assert at.slider(key="hidden_cos_layer").value == 1
    else:
        assert at.selectbox(key="heads_method").value == "entropy"


def test_the_folder_typed_in_the_sidebar_survives_a_switch_to_hub_id_and_back(tiny_models, tiny_model_folders):
    """Issue 18, bug 13: the folder path typed earlier was forgotten after switching to hub id and back."""
    from app.sidebar import HUB, LOCAL

    folder = str(tiny_model_folders["llama"])
    at = open_page()
    at.selectbox(key="model_choice").set_value(LOCAL).run()
    at.text_input(key="model_folder").set_value(folder).run()
    at.selectbox(key="model_choice").set_value(HUB).run()
    at.selectbox(key="model_choice").set_value(LOCAL).run()
    assert not at.exception and not at.error
    assert at.text_input(key="model_folder").value == folder == browser_shows(at.text_input(key="model_folder"))
    assert "Type a folder or hub id in the sidebar." not in [i.value for i in at.info]
