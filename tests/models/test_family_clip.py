"""CLIP: both towers, the similarity scores and the zero-shot pipeline equal transformers on a tiny random CLIPModel."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as tf
from PIL import Image

from models import InputError, load_model
from models.pipelines import pipeline
from tests.tiny_clip import make_clip

ATOL = 1e-4
LABELS = ["cat", "dog barked", "a very good movie"]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    reference = make_clip(folder)
    return folder, reference, load_model(str(folder))


def _image(seed: int, width: int = 50, height: int = 40) -> Image.Image:
    return Image.fromarray((np.random.RandomState(seed).rand(height, width, 3) * 255).astype("uint8"))


def _reference(folder, reference, images, sentences):
    pixels = tf.CLIPImageProcessor.from_pretrained(folder)(images, return_tensors="pt").pixel_values
    text = tf.AutoTokenizer.from_pretrained(folder)(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = reference(input_ids=text.input_ids, attention_mask=text.attention_mask, pixel_values=pixels,
                        output_attentions=True, output_hidden_states=True)
    return pixels, text, out


def _assert_towers_equal(trace, out, text_mask):
    assert len(trace.hidden_states) == len(out.vision_model_output.hidden_states) == 4
    for a, b in zip(trace.hidden_states, out.vision_model_output.hidden_states):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    for a, b in zip(trace.attentions, out.vision_model_output.attentions):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    text = trace.extras["text_tower"]
    real = text_mask.bool()
    for a, b in zip(text["hidden_states"], out.text_model_output.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(text["last_hidden_state"][real], out.text_model_output.last_hidden_state[real],
                               atol=ATOL, rtol=0)
    keys = real[:, None, None, :]
    for a, b in zip(text["attentions"], out.text_model_output.attentions):
        torch.testing.assert_close(a * keys, b * keys, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.logits, out.logits_per_image, atol=ATOL, rtol=0)
    torch.testing.assert_close(text["embeds"], out.text_embeds, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.extras["image_embeds"], out.image_embeds, atol=ATOL, rtol=0)


def test_both_towers_and_the_scores_match_transformers(pair):
    folder, reference, model = pair
    images = [_image(0), _image(1, 30, 60)]  # landscape and portrait: the shortest edge is resized, then cropped
    trace = model.run(images=images, candidate_labels=LABELS)
    pixels, text, out = _reference(folder, reference, images, trace.extras["sentences"])
    torch.testing.assert_close(model.processor(images), pixels, atol=1e-6, rtol=0)
    assert torch.equal(trace.extras["text_tower"]["input_ids"], text.input_ids)
    assert trace.extras["text_tower"]["attention_mask"][0].sum() < trace.extras["text_tower"]["attention_mask"][2].sum()
    assert trace.tokens[0][0] == "[CLS]" and len(trace.tokens[0]) == 26
    _assert_towers_equal(trace, out, text.attention_mask)


def test_the_pipeline_equals_transformers_pipeline(pair):
    folder, _, model = pair
    theirs = tf.pipeline("zero-shot-image-classification", model=str(folder))
    for seed in (2, 3):
        image = _image(seed)
        ours = pipeline("zero-shot-image-classification", model)(image, candidate_labels=LABELS)
        expected = theirs(image, candidate_labels=LABELS)
        assert [r["label"] for r in ours] == [r["label"] for r in expected]
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in expected], atol=ATOL)
        assert ours.trace.extras["text_tower"]["attentions"]  # the result carries both towers' patterns
    templated = pipeline("zero-shot-image-classification", model)(_image(4), candidate_labels=LABELS,
                                                                   hypothesis_template="a {} .")
    expected = theirs(_image(4), candidate_labels=LABELS, hypothesis_template="a {} .")
    np.testing.assert_allclose([r["score"] for r in templated], [r["score"] for r in expected], atol=ATOL)


def test_heads_of_each_tower_mask_and_prune(pair, tmp_path):
    folder, reference, model = pair
    assert model.stacks == ("vision", "text")
    spec = {"vision.0": [1], "text.1": [0, 3]}
    image = _image(5)
    plain = model.run(images=[image], candidate_labels=LABELS)
    with model.mask_heads(spec):
        masked = model.run(images=[image], candidate_labels=LABELS)
    assert torch.all(masked.attentions[0][:, 1] == 0) and not torch.allclose(masked.logits, plain.logits)
    # a text-tower mask leaves the image tower alone
    with model.mask_heads({"text.0": [0]}):
        text_only = model.run(images=[image], candidate_labels=LABELS)
    for a, b in zip(text_only.hidden_states, plain.hidden_states):
        assert torch.equal(a, b)
    pruned = model.prune_heads(spec)
    again = pruned.run(images=[image], candidate_labels=LABELS)
    torch.testing.assert_close(again.logits, masked.logits, atol=1e-5, rtol=0)
    assert pruned.head_ids("text")[1] == [1, 2] and pruned.head_ids()[0] == [0]
    saved = pruned.save_pretrained(tmp_path / "pruned")
    reloaded = load_model(str(saved)).run(images=[image], candidate_labels=LABELS)
    assert torch.equal(reloaded.logits, again.logits)


def test_an_unpruned_save_loads_in_transformers_with_equal_scores(pair, tmp_path):
    folder, _, model = pair
    saved = model.save_pretrained(tmp_path / "saved")
    theirs = tf.CLIPModel.from_pretrained(saved, attn_implementation="eager").eval()
    image = _image(6)
    trace = model.run(images=[image], candidate_labels=LABELS)
    _, _, out = _reference(saved, theirs, [image], trace.extras["sentences"])
    torch.testing.assert_close(trace.logits, out.logits_per_image, atol=ATOL, rtol=0)


def test_bad_input_is_refused_by_name(pair):
    _, _, model = pair
    with pytest.raises(InputError, match="candidate_labels"):
        model.run(images=[_image(0)])
    with pytest.raises(InputError, match="no \\{\\}"):
        model.run(images=[_image(0)], candidate_labels=LABELS, hypothesis_template="a photo")
    with pytest.raises(InputError, match="empty"):
        model.run(images=[_image(0)], candidate_labels=["cat", " "])
    with pytest.raises(InputError, match="not both"):
        model.run(images=[_image(0)], candidate_labels=LABELS, texts=["a cat"])
    with pytest.raises(InputError):
        model.run(images=[_image(0)], candidate_labels=LABELS, top_k=3)
    with pytest.raises(InputError, match="zero-shot-image-classification"):
        pipeline("image-classification", model)
