"""Images & audio with a two-tower image-text model (CLIP): typed labels scored, both towers' attention drawn."""
from __future__ import annotations

import numpy as np
import pytest

import models
from analysis.modal_attention import patch_attention_map
from tests.app.page_helpers import chart_z, open_page, shown_text
from tests.tiny_clip import make_clip


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app-clip")
    make_clip(folder)
    return str(folder)


def test_typed_labels_are_scored_and_both_towers_are_drawn(tiny_models, clip_folder):
    at = open_page("vision_audio.py", query={"model": clip_folder})
    at.selectbox(key="va_model").set_value(clip_folder).run()
    assert not at.exception and not at.error
    at.selectbox(key="va_image_choice").set_value("flower.jpg").run()
    at.text_input(key="va_labels").set_value("cat, dog, a very good movie").run()
    assert not at.exception and not at.error
    model = models.load_model(clip_folder)
    image = "sample_data/images/flower.jpg"
    trace = model.run(images=[image], candidate_labels=["cat", "dog", "a very good movie"])
    probs = trace.logits[0].softmax(-1).numpy()
    table = at.dataframe[0].value
    assert list(table["label"]) == [["cat", "dog", "a very good movie"][i] for i in np.argsort(-probs)]
    np.testing.assert_allclose(sorted(table["score"], reverse=True), np.round(np.sort(probs)[::-1], 4), atol=1e-4)
    # the image tower's [CLS] attention on the picture, as for a ViT
    np.testing.assert_allclose(chart_z(at, "va_patch_overlay", trace=1), patch_attention_map(trace, 2, 0), atol=1e-6)
    # the text tower: the chosen sentence's pattern at the chosen layer and head, padding cut off
    at.selectbox(key="va_sentence").set_value(2).run()
    at.slider(key="va_text_layer").set_value(0).run()
    at.selectbox(key="va_text_head").set_value(3).run()
    tower = trace.extras["text_tower"]
    n = int(tower["attention_mask"][2].sum())
    np.testing.assert_allclose(chart_z(at, "va_text_attention"), tower["attentions"][0][2, 3, :n, :n].numpy(),
                               atol=1e-6)
    assert not at.exception and not at.error


def test_a_template_without_a_slot_is_a_plain_error(tiny_models, clip_folder):
    at = open_page("vision_audio.py", query={"model": clip_folder})
    at.selectbox(key="va_model").set_value(clip_folder).run()
    at.text_input(key="va_template").set_value("a photo").run()
    assert not at.exception
    assert any("no {} for the label" in shown_text(e.value) for e in at.error)
