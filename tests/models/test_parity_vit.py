"""ViT parity with transformers (eager attention) on tiny random checkpoints made in the test."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from models import load_model
from tests.tiny_modal_models import make_vit

ATOL = 1e-5


@pytest.fixture(scope="module", params=["vit-cls", "vit"])
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return request.param, make_vit(folder, request.param), load_model(str(folder)), folder


@pytest.fixture(scope="module")
def png_path(tmp_path_factory):
    """A grayscale PNG on disk, to exercise loading from a path and the conversion to RGB."""
    path = tmp_path_factory.mktemp("img") / "gray.png"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 4, mode="L").save(path)
    return str(path)


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)), _PNG[0]]


_PNG: list[str] = []


@pytest.fixture(autouse=True)
def _png(png_path):
    _PNG[:] = [png_path]


def _reference(reference, pixel_values, **kwargs):
    with torch.no_grad():
        return reference(pixel_values=pixel_values, output_attentions=True, output_hidden_states=True, **kwargs)


def _compare(trace, theirs):
    # transformers' ViT reports its last hidden state before the final LayerNorm; ours after it (house convention)
    for a, b in zip(trace.hidden_states[:-1], theirs.hidden_states[:-1], strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.resid_final, theirs.hidden_states[-1], atol=ATOL, rtol=0)
    for a, b in zip(trace.attentions, theirs.attentions, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_images_match_transformers(pair):
    kind, reference, model, _ = pair
    trace = model.run(images=_images())
    assert trace.modality == "image" and trace.tokens[0][:2] == ["[CLS]", "patch 0,0"]
    assert trace.hidden_states[0].shape == (2, 17, 32)  # 16 patches of a 16x16 image in 4x4 + [CLS]
    theirs = _reference(reference, trace.extras["pixel_values"])
    _compare(trace, theirs)
    if kind == "vit-cls":
        torch.testing.assert_close(trace.logits, theirs.logits, atol=ATOL, rtol=0)
        assert model.labels == {0: "cat", 1: "dog", 2: "fish"}
    else:
        torch.testing.assert_close(trace.hidden_states[-1], theirs.last_hidden_state, atol=ATOL, rtol=0)
        torch.testing.assert_close(trace.pooled, theirs.pooler_output, atol=ATOL, rtol=0)


def test_head_mask_matches_transformers_head_mask(pair):
    _, reference, model, _ = pair
    with model.mask_heads({0: [1, 3], 1: [0]}):
        trace = model.run(images=_images())
    head_mask = torch.ones(2, 4)
    head_mask[0, [1, 3]] = 0
    head_mask[1, 0] = 0
    _compare(trace, _reference(reference, trace.extras["pixel_values"], head_mask=head_mask))


def test_pruned_equals_masked_and_loads_in_transformers(pair, tmp_path):
    import transformers as tf
    kind, _, model, _ = pair
    pruned = model.prune_heads({0: [1, 3], 1: [0]})
    assert pruned.head_ids() == [[0, 2], [1, 2, 3]] and model.head_ids() == [[0, 1, 2, 3]] * 2  # original untouched
    with model.mask_heads({0: [1, 3], 1: [0]}):
        masked = model.run(images=_images())
    ours = pruned.run(images=_images())
    torch.testing.assert_close(ours.hidden_states[-1], masked.hidden_states[-1], atol=ATOL, rtol=0)
    pruned.save_pretrained(tmp_path)
    cls = tf.ViTForImageClassification if kind == "vit-cls" else tf.ViTModel
    reloaded = cls.from_pretrained(tmp_path, attn_implementation="eager").eval()
    _compare(ours, _reference(reloaded, ours.extras["pixel_values"]))


def test_save_and_reload_is_identical(pair, tmp_path):
    _, _, model, _ = pair
    model.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    a, b = model.run(images=_images()), again.run(images=_images())
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)


def test_fast_path_equals_capture_path(pair):
    _, _, model, _ = pair
    pixels = model.prepare(images=_images()).inputs["pixel_values"]
    fast = model.forward(pixel_values=pixels, capture=False)
    full = model.forward(pixel_values=pixels, capture=True)
    torch.testing.assert_close(fast.final, full.final, atol=1e-5, rtol=0)
    assert fast.attentions == [] and len(full.attentions) == 2


def test_hook_points_see_patches(pair):
    _, _, model, _ = pair
    seen = {}

    def record(x, name):
        seen[name] = x.shape  # returns None: the activation is left as it is

    with model.hooks({"blocks.1.attn.hook_pattern": record}):
        model.run(images=_images()[:1])
    assert seen == {"blocks.1.attn.hook_pattern": torch.Size([1, 4, 17, 17])}


def test_text_input_is_refused_clearly(pair):
    from models import InputError
    _, _, model, _ = pair
    with pytest.raises(InputError, match="reads image"):
        model.run("a cat")
