"""DeiT parity with transformers (eager attention) on tiny random checkpoints made in the test: the bare body with
its pooler, DeiTForImageClassification and DeiTForImageClassificationWithTeacher; and the patch views reading
the patches after both leading tokens ([CLS], [DIST])."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import load_model, pipeline
from tests.tiny_modal_models import _randomise

ATOL = 1e-4
LABELS = {0: "cat", 1: "dog", 2: "fish"}
KINDS = ("deit-cls", "deit-teacher", "deit")


def make_deit(folder: Path, kind: str, seed: int = 0):
    """2 layers, 4 heads, hidden 32, 16 x 16 images in 4 x 4 patches, saved with a DeiT image processor (resize to
    20 x 20, bicubic, centre crop 16 x 16)."""
    import transformers as tf
    torch.manual_seed(seed)
    params = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=37, hidden_act="gelu", qkv_bias=True)
    if kind != "deit":
        params.update(id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    config = tf.DeiTConfig(**params)
    cls = {"deit": tf.DeiTModel, "deit-cls": tf.DeiTForImageClassification,
           "deit-teacher": tf.DeiTForImageClassificationWithTeacher}[kind]
    model = cls(config)
    _randomise(model)
    with torch.no_grad():  # transformers initialises both leading tokens to zeros: make them differ
        body = model if kind == "deit" else model.deit
        body.embeddings.cls_token.normal_()
        body.embeddings.distillation_token.normal_()
    model.save_pretrained(folder)
    tf.DeiTImageProcessor(size={"height": 20, "width": 20}, crop_size={"height": 16, "width": 16},
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return model


@pytest.fixture(scope="module", params=KINDS)
def case(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    return request.param, make_deit(folder, request.param), load_model(str(folder)), folder


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (24, 18, 3), dtype=np.uint8))]


def _reference(reference, pixel_values, **kwargs):
    with torch.no_grad():
        return reference(pixel_values=pixel_values, output_attentions=True, output_hidden_states=True, **kwargs)


def _compare(kind, trace, theirs):
    # transformers reports its last hidden state before the final LayerNorm; ours after it (house convention)
    for a, b in zip(trace.hidden_states[:-1], theirs.hidden_states[:-1], strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.resid_final, theirs.hidden_states[-1], atol=ATOL, rtol=0)
    for a, b in zip(trace.attentions, theirs.attentions, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    if kind == "deit":
        torch.testing.assert_close(trace.hidden_states[-1], theirs.last_hidden_state, atol=ATOL, rtol=0)
        torch.testing.assert_close(trace.pooled, theirs.pooler_output, atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(trace.logits, theirs.logits, atol=ATOL, rtol=0)
    if kind == "deit-teacher":  # both parts of the averaged logits, under transformers' names
        torch.testing.assert_close(trace.extras["cls_logits"], theirs.cls_logits, atol=ATOL, rtol=0)
        torch.testing.assert_close(trace.extras["distillation_logits"], theirs.distillation_logits, atol=ATOL, rtol=0)


def test_images_match_transformers(case):
    kind, reference, model, _ = case
    trace = model.run(images=_images())
    assert model.family == "deit" and model.task == (None if kind == "deit" else "image-classification")
    assert trace.tokens[0][:3] == ["[CLS]", "[DIST]", "patch 0,0"] and trace.extras["first_patch"] == 2
    assert trace.hidden_states[0].shape == (2, 18, 32)  # [CLS], [DIST] and 16 patches
    _compare(kind, trace, _reference(reference, trace.extras["pixel_values"]))
    if kind != "deit":
        assert model.labels == LABELS


def test_our_processor_matches_transformers(case):
    import transformers as tf
    _, _, model, folder = case
    theirs = tf.AutoImageProcessor.from_pretrained(folder)(_images(), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(model.prepare(images=_images()).inputs["pixel_values"], theirs, atol=1e-5, rtol=0)


def test_head_mask_matches_transformers_head_mask(case):
    kind, reference, model, _ = case
    with model.mask_heads({0: [1, 3], 1: [0]}):
        trace = model.run(images=_images())
    head_mask = torch.ones(2, 4)
    head_mask[0, [1, 3]] = 0
    head_mask[1, 0] = 0
    _compare(kind, trace, _reference(reference, trace.extras["pixel_values"], head_mask=head_mask))


def test_pruned_equals_masked_and_loads_in_transformers(case, tmp_path):
    import transformers as tf
    kind, _, model, _ = case
    pruned = model.prune_heads({0: [1, 3], 1: [0]})
    assert pruned.head_ids() == [[0, 2], [1, 2, 3]] and model.head_ids() == [[0, 1, 2, 3]] * 2
    with model.mask_heads({0: [1, 3], 1: [0]}):
        masked = model.run(images=_images())
    ours = pruned.run(images=_images())
    torch.testing.assert_close(ours.hidden_states[-1], masked.hidden_states[-1], atol=ATOL, rtol=0)
    pruned.save_pretrained(tmp_path)
    cls = {"deit": tf.DeiTModel, "deit-cls": tf.DeiTForImageClassification,
           "deit-teacher": tf.DeiTForImageClassificationWithTeacher}[kind]
    reloaded, info = cls.from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    _compare(kind, ours, _reference(reloaded.eval(), ours.extras["pixel_values"]))


def test_save_and_reload_is_identical(case, tmp_path):
    kind, _, model, _ = case
    model.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.task == model.task
    a, b = model.run(images=_images()), again.run(images=_images())
    for x, y in zip(a.hidden_states, b.hidden_states, strict=True):
        assert torch.equal(x, y)
    if kind != "deit":
        assert torch.equal(a.logits, b.logits)


def test_image_classification_pipeline_matches_transformers(case):
    import transformers as tf
    kind, _, model, folder = case
    if kind == "deit":
        pytest.skip("a bare body serves no pipeline")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 20, 3), dtype=np.uint8))
    ours = pipeline("image-classification", model)(image)
    theirs = tf.pipeline("image-classification", model=str(folder), device="cpu")(image)
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)


def test_one_example_of_a_trace_keeps_the_logit_parts(case):
    kind, _, model, _ = case
    if kind != "deit-teacher":
        pytest.skip("the teacher head alone has two logit parts")
    trace = model.run(images=_images())
    one = trace.example(1)
    torch.testing.assert_close(one.extras["cls_logits"], trace.extras["cls_logits"][1:2])
    torch.testing.assert_close((one.extras["cls_logits"] + one.extras["distillation_logits"]) / 2, one.logits)


def test_patch_views_start_after_both_leading_tokens(case):
    from analysis.modal_attention import first_patch, patch_attention_map, patch_rollout_map
    from analysis.rollout import attention_rollout
    _, _, model, _ = case
    trace = model.run(images=_images()[:1])
    assert first_patch(trace) == 2
    mean = trace.attentions[1][0].float().mean(0)  # (T, T)
    np.testing.assert_allclose(patch_attention_map(trace, 1), mean[0, 2:].reshape(4, 4).numpy(), atol=1e-6)
    np.testing.assert_allclose(patch_attention_map(trace, 1, query=1), mean[1, 2:].reshape(4, 4).numpy(), atol=1e-6)
    rollout = attention_rollout(list(trace.attentions), 0.5)[0, 0]
    np.testing.assert_allclose(patch_rollout_map(trace), rollout[2:].reshape(4, 4).numpy(), atol=1e-6)


def test_attention_attribution_spreads_patches_only(case):
    from analysis.attribution.image import attribute_image
    from analysis.modal_attention import patch_rollout_map
    kind, _, model, _ = case
    if kind == "deit":
        pytest.skip("attribution explains a classifier")
    scores = attribute_image(model, _images()[0], methods=["attention_rollout"]).results["attention_rollout"].scores
    assert scores.shape == (16, 16)  # one value per pixel: 4 x 4 patches of 4 x 4 pixels
    blocks = scores.reshape(4, 4, 4, 4).permute(0, 2, 1, 3)  # (patch row, patch col, 4, 4)
    per_patch = blocks[:, :, 0, 0]
    assert torch.equal(blocks, per_patch[:, :, None, None].expand_as(blocks))  # a patch's score on all its pixels
    # the scores are the rollout from [CLS] to the 16 patches: [CLS] and [DIST] are not spread over any pixel
    rollout = torch.from_numpy(patch_rollout_map(model.run(images=_images()[:1])))
    torch.testing.assert_close(per_patch / per_patch.sum(), rollout / rollout.sum(), atol=1e-5, rtol=0)
