"""Text attribution on tiny random checkpoints: completeness, special tokens, targets, determinism, no mutation."""
from __future__ import annotations

import pytest
import torch

from analysis.attribution import METHODS, attribute_text
from analysis.attribution.text_inputs import TextForward, encode_for_attribution
from models import load_model
from models.errors import InputError
from tests.tiny_models import make_checkpoint

ALL = list(METHODS)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert-cls")
    # larger weights than transformers' 0.02, so the random classifier's logits move visibly with the input
    make_checkpoint("bert-cls", folder, initializer_range=0.2)
    return load_model(str(folder))


@pytest.fixture(scope="module")
def causal_lm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpt2")
    make_checkpoint("gpt2", folder, initializer_range=0.2)
    return load_model(str(folder))


def _logit(model, ids, target, position=None):
    with torch.no_grad():
        logits = model.forward(input_ids=ids, capture=False).logits
    return float(logits[0, target] if position is None else logits[0, position, target])


def test_integrated_gradients_add_up_to_the_output_difference(classifier):
    report = attribute_text(classifier, "i love this film", methods=["integrated_gradients"], target=1)
    ig = report.results["integrated_gradients"]
    inputs = encode_for_attribution(classifier, "i love this film")
    difference = _logit(classifier, inputs.input_ids, 1) - _logit(classifier, inputs.baseline_ids, 1)
    assert abs(difference) > 0.1  # a real difference to explain
    assert float(ig.scores.sum()) == pytest.approx(difference, abs=0.05 * abs(difference))  # completeness
    assert ig.output_difference == pytest.approx(difference, abs=1e-4)
    assert abs(ig.convergence_delta) <= 0.05 * abs(difference) and ig.converged


def test_the_baseline_is_padding_with_special_tokens_kept(classifier):
    inputs = encode_for_attribution(classifier, "i love this film")
    assert inputs.tokens == ["[CLS]", "i", "love", "this", "film", "[SEP]"]
    assert inputs.special == [True, False, False, False, False, True]
    pad = classifier.tokenizer.pad_token_id
    assert inputs.baseline_ids[0].tolist() == [inputs.input_ids[0, 0].item(), pad, pad, pad, pad, inputs.input_ids[0, -1].item()]
    report = attribute_text(classifier, "i love this film", methods=["integrated_gradients", "occlusion"])
    for key in ("integrated_gradients", "occlusion"):
        scores = report.results[key].scores
        assert scores[0] == 0 and scores[-1] == 0  # input equals baseline there
        assert scores[1:-1].abs().sum() > 0


def test_occlusion_is_the_drop_when_one_token_is_padded(classifier):
    report = attribute_text(classifier, "a dog barked loudly", methods=["occlusion"], target=0)
    inputs = encode_for_attribution(classifier, "a dog barked loudly")
    full = _logit(classifier, inputs.input_ids, 0)
    for i in range(1, len(inputs.tokens) - 1):
        occluded = inputs.input_ids.clone()
        occluded[0, i] = classifier.tokenizer.pad_token_id
        assert float(report.results["occlusion"].scores[i]) == pytest.approx(full - _logit(classifier, occluded, 0), abs=1e-5)


def test_input_x_gradient_is_embedding_times_gradient(classifier):
    report = attribute_text(classifier, "the cat sat", methods=["input_x_gradient"], target=1)
    inputs = encode_for_attribution(classifier, "the cat sat")
    embeds = classifier.network.embed.word(inputs.input_ids).detach().requires_grad_(True)
    score = classifier.forward(inputs_embeds=embeds, token_type_ids=inputs.token_type_ids, capture=False).logits[0, 1]
    (grad,) = torch.autograd.grad(score, embeds)
    torch.testing.assert_close(report.results["input_x_gradient"].scores, (embeds * grad)[0].sum(-1).detach())


def test_every_method_gives_one_finite_score_per_token_and_is_deterministic(classifier):
    first = attribute_text(classifier, "the dog ran away quickly", methods=ALL)
    second = attribute_text(classifier, "the dog ran away quickly", methods=ALL)
    n = len(first.units)
    for key in ALL:
        a, b = first.results[key].scores, second.results[key].scores
        assert a.shape == (n,) and torch.isfinite(a).all(), key
        assert torch.equal(a, b), f"{key} is not deterministic"
        if not METHODS[key].signed:
            assert (a >= 0).all(), key


def test_attribution_never_touches_the_shared_model(classifier):
    hooks_seen = []
    original = TextForward.from_embeds

    def spy(self, *args, **kwargs):
        hooks_seen.append(sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in classifier.network.modules()))
        return original(self, *args, **kwargs)

    TextForward.from_embeds = spy
    try:
        attribute_text(classifier, "i love this film", methods=ALL)
    finally:
        TextForward.from_embeds = original
    assert hooks_seen and max(hooks_seen) == 0  # Captum hooked the private TokenEmbedding, not the model
    assert all(p.grad is None for p in classifier.network.parameters())
    assert all(p.requires_grad for p in classifier.network.parameters())


def test_head_masks_in_context_change_the_attribution(classifier):
    plain = attribute_text(classifier, "i love this film", methods=["input_x_gradient"], target=1)
    with classifier.mask_heads({0: [0, 1], 1: [2]}):
        masked = attribute_text(classifier, "i love this film", methods=["input_x_gradient"], target=1)
    assert not torch.allclose(plain.results["input_x_gradient"].scores, masked.results["input_x_gradient"].scores)


def test_the_next_token_of_a_causal_lm_is_the_default_target(causal_lm):
    report = attribute_text(causal_lm, "the cat sat on the", methods=["integrated_gradients", "attention_rollout"])
    inputs = encode_for_attribution(causal_lm, "the cat sat on the")
    with torch.no_grad():
        logits = causal_lm.forward(input_ids=inputs.input_ids, capture=False).logits[0, -1]
    assert report.target.index == int(logits.argmax()) and not report.target.chosen
    assert report.target.position == len(report.units) - 1
    assert report.target.label == causal_lm.tokenizer.id_to_token(report.target.index)
    chosen = attribute_text(causal_lm, "the cat sat on the", methods=["integrated_gradients"], target="mat")
    assert chosen.target.index == causal_lm.tokenizer.token_to_id("mat") and chosen.target.chosen
    ig = chosen.results["integrated_gradients"]
    assert ig.converged and abs(ig.convergence_delta) <= 0.05 * abs(ig.output_difference) + 1e-5


def test_targets_by_label_and_out_of_range(classifier):
    assert attribute_text(classifier, "the cat", methods=["saliency"], target=0).target.index == 0
    with pytest.raises(InputError, match="Target 2 is out of range: this model has 2 classes"):
        attribute_text(classifier, "the cat", methods=["saliency"], target=2)
    with pytest.raises(InputError, match="out of range"):
        attribute_text(classifier, "the cat", methods=["saliency"], target=-1)
    with pytest.raises(InputError, match="not a label of this model"):
        attribute_text(classifier, "the cat", methods=["saliency"], target="joyful")
    with pytest.raises(InputError, match="class number or a label name"):
        attribute_text(classifier, "the cat", methods=["saliency"], target=True)


def test_vocabulary_targets_out_of_range(causal_lm):
    with pytest.raises(InputError, match="vocabulary has ids 0..63"):
        attribute_text(causal_lm, "the cat", methods=["saliency"], target=64)
    with pytest.raises(InputError, match="not a single token"):
        attribute_text(causal_lm, "the cat", methods=["saliency"], target="zebra crossing")


@pytest.mark.parametrize("text", ["", "   ", ("", " ")])
def test_empty_input_is_a_clear_error(classifier, text):
    with pytest.raises(InputError, match="Empty input"):
        attribute_text(classifier, text, methods=["saliency"])


def test_unknown_methods_and_bad_parameters(classifier):
    with pytest.raises(InputError, match="Unknown attribution method 'lime'"):
        attribute_text(classifier, "the cat", methods=["lime"])
    with pytest.raises(InputError, match="n_steps must lie in 2..400"):
        attribute_text(classifier, "the cat", methods=["integrated_gradients"], params={"integrated_gradients": {"n_steps": 1}})
    with pytest.raises(InputError, match="has no parameter steps"):
        attribute_text(classifier, "the cat", methods=["integrated_gradients"], params={"integrated_gradients": {"steps": 9}})
    with pytest.raises(InputError, match="at least one attribution method"):
        attribute_text(classifier, "the cat", methods=[])


def test_models_without_a_decision_are_refused(tmp_path):
    make_checkpoint("bert", tmp_path / "bert")
    with pytest.raises(InputError, match="no task head"):
        attribute_text(load_model(str(tmp_path / "bert")), "the cat", methods=["saliency"])
    make_checkpoint("bert-mlm", tmp_path / "mlm")
    mlm = load_model(str(tmp_path / "mlm"))
    mlm.tokenizer.backend.add_special_tokens(["[MASK]"])  # the tiny word-level tokenizer would split "[MASK]"
    with pytest.raises(InputError, match=r"put one in the text"):
        attribute_text(mlm, "the cat sat", methods=["saliency"])
    report = attribute_text(mlm, "the cat [MASK] on the mat", methods=["saliency", "attention_rollout"])
    assert report.target.position == 3  # [CLS] the cat [MASK]


def test_sentence_pairs_keep_every_separator_in_the_baseline(classifier):
    report = attribute_text(classifier, ("who was it ?", "it was me ."), methods=["integrated_gradients"], target=0)
    assert report.units.count("[SEP]") == 2 and report.special.count(True) == 3
    scores = report.results["integrated_gradients"].scores
    assert all(float(scores[i]) == 0.0 for i, special in enumerate(report.special) if special)
    assert report.input_text == "who was it ? / it was me ."
