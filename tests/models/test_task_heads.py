"""with_head: the body's outputs stay identical, known heads load from the checkpoint, and saved models
load in transformers' AutoModelFor... with the same logits."""
from __future__ import annotations

import pytest
import torch

from models import InputError, UnsupportedArchitectureError, load_model
from models.families import head_formats

HEAD_FORMATS = head_formats()
from models.task_heads import available_heads, head_is_trained
from tests.tiny_models import make_checkpoint

TEXTS = ["the cat sat on the mat .", "a dog barked ."]
LABELS = {"sequence-classification": ["negative", "positive", "neutral"],
          "token-classification": ["O", "B-PER", "I-PER", "B-LOC"]}
CASES = sorted((family, task) for task, family in HEAD_FORMATS if family in ("bert", "gpt2", "llama"))


@pytest.fixture(scope="module")
def bodies(tmp_path_factory):
    out = {}
    for kind in ("bert", "gpt2", "llama", "bert-cls", "bert-mlm"):
        folder = tmp_path_factory.mktemp(kind)
        make_checkpoint(kind, folder)
        out[kind] = load_model(str(folder))
    return out


def _auto_class(task):
    import transformers as tf
    return {"masked-lm": tf.AutoModelForMaskedLM, "causal-lm": tf.AutoModelForCausalLM,
            "sequence-classification": tf.AutoModelForSequenceClassification,
            "token-classification": tf.AutoModelForTokenClassification,
            "question-answering": tf.AutoModelForQuestionAnswering}[task]


def test_every_text_family_has_the_five_text_heads_transformers_has():
    assert available_heads("bert") == ["masked-lm", "sequence-classification", "token-classification",
                                       "question-answering"]
    for family in ("gpt2", "llama"):
        assert available_heads(family) == ["causal-lm", "sequence-classification", "token-classification",
                                           "question-answering"]


@pytest.mark.parametrize("family, task", CASES)
def test_swapped_head_keeps_the_body_outputs_identical(bodies, family, task):
    body = bodies[family]
    swapped = body.with_head(task, labels=LABELS.get(task))
    before, after = body.run(TEXTS), swapped.run(TEXTS)
    for a, b in zip(before.hidden_states, after.hidden_states):
        assert torch.equal(a, b)
    for a, b in zip(before.attentions, after.attentions):
        assert torch.equal(a, b)
    B, T = after.input_ids.shape
    expected = {"masked-lm": (B, T, body.config.vocab_size), "causal-lm": (B, T, body.config.vocab_size),
                "sequence-classification": (B, 3), "token-classification": (B, T, 4),
                "question-answering": (B, T, 2)}[task]
    assert tuple(after.logits.shape) == expected
    assert swapped.task == task and body.task == bodies[family].task  # the original keeps its own head


@pytest.mark.parametrize("family, task", CASES)
def test_saved_head_loads_in_transformers_with_equal_logits(bodies, family, task, tmp_path):
    swapped = bodies[family].with_head(task, labels=LABELS.get(task), seed=1)
    with torch.no_grad():  # fresh heads have zero biases: make every head weight count
        for p in swapped.network.head.parameters():
            if p is not swapped.network.embed.word.weight:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    swapped.save_pretrained(tmp_path)
    reference, info = _auto_class(task).from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    assert type(reference).__name__ == HEAD_FORMATS[(task, family)].architecture
    if task in LABELS:
        assert reference.config.id2label == dict(enumerate(LABELS[task]))
    reference.eval()
    trace = swapped.run(TEXTS)
    kwargs = dict(input_ids=trace.input_ids, attention_mask=trace.attention_mask)
    if family == "bert":
        kwargs["token_type_ids"] = trace.token_type_ids
    with torch.no_grad():
        out = reference(**kwargs)
    theirs = torch.stack([out.start_logits, out.end_logits], -1) if task == "question-answering" else out.logits
    ours = trace.logits
    if ours.dim() == 3:
        real = trace.attention_mask.bool()
        ours, theirs = ours[real], theirs[real]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)
    again = load_model(str(tmp_path))
    assert again.task == task and again.labels == swapped.labels
    assert torch.equal(again.run(TEXTS).logits, trace.logits)


def test_new_head_is_initialised_like_transformers_and_flagged_untrained(bodies):
    body = bodies["bert"]
    head = body.with_head("token-classification", labels=LABELS["token-classification"]).network.head
    assert head.trained is False
    weight = head.classifier.weight
    assert torch.all(head.classifier.bias == 0)
    assert abs(weight.std().item() - 0.02) < 0.005  # initializer_range, as transformers' _init_weights
    again = body.with_head("token-classification", labels=LABELS["token-classification"]).network.head
    other = body.with_head("token-classification", labels=LABELS["token-classification"], seed=5).network.head
    assert torch.equal(again.classifier.weight, weight) and not torch.equal(other.classifier.weight, weight)


def test_known_head_comes_back_from_the_checkpoint(bodies):
    classifier = bodies["bert-cls"]
    assert classifier.task == "sequence-classification" and head_is_trained(classifier) is True
    tagger = classifier.with_head("token-classification")
    assert head_is_trained(tagger) is False
    back = tagger.with_head("sequence-classification")
    assert head_is_trained(back) is True
    assert back.labels == (classifier.labels or {0: "LABEL_0", 1: "LABEL_1"})  # transformers' defaults when unnamed
    assert back.name == f"{classifier.name} (sequence-classification)"
    assert torch.equal(back.run(TEXTS).logits, classifier.run(TEXTS).logits)

    mlm = bodies["bert-mlm"]
    back = mlm.with_head("question-answering").with_head("masked-lm")
    assert head_is_trained(back) is True
    torch.testing.assert_close(back.run(TEXTS).logits, mlm.run(TEXTS).logits, atol=0, rtol=0)


def test_classifier_on_a_body_without_pooler_gets_one(bodies):
    mlm = bodies["bert-mlm"]
    assert mlm.network.pooler is None  # BertForMaskedLM checkpoints have none
    classifier = mlm.with_head("sequence-classification", labels=["no", "yes"])
    assert classifier.network.pooler is not None and head_is_trained(classifier) is False
    assert classifier.run(TEXTS).logits.shape == (2, 2)


def test_decoder_classifier_reads_the_last_real_token(bodies):
    model = bodies["gpt2"].with_head("sequence-classification", labels=["a", "b"])
    batch = model.run(["the cat sat on the mat .", "a dog ."])
    alone = model.run("a dog .")
    torch.testing.assert_close(batch.logits[1], alone.logits[0], atol=1e-5, rtol=0)
    assert model.config.hf_config["pad_token_id"] == model.tokenizer.pad_token_id


def test_loader_flags_a_head_the_checkpoint_lacks(bodies):
    fresh = load_model(bodies["bert"].source, task="sequence-classification")
    assert head_is_trained(fresh) is False
    assert head_is_trained(bodies["bert"]) is None
    assert torch.all(fresh.network.head.classifier.bias == 0)


def test_original_model_is_untouched(bodies):
    classifier = bodies["bert-cls"]
    head, state = classifier.network.head, {k: v.clone() for k, v in classifier.network.state_dict().items()}
    swapped = classifier.with_head("question-answering")
    assert classifier.network.head is head and classifier.task == "sequence-classification"
    assert all(torch.equal(v, classifier.network.state_dict()[k]) for k, v in state.items())
    assert swapped.network is not classifier.network


@pytest.mark.parametrize("call, error, message", [
    (lambda m: m.with_head("causal-lm"), UnsupportedArchitectureError, "masked-lm"),
    (lambda m: m.with_head("summarization"), UnsupportedArchitectureError, "Available"),
    (lambda m: m.with_head("sequence-classification", labels=["only"]), InputError, "at least two"),
    (lambda m: m.with_head("sequence-classification", labels=["a", "a"]), InputError, "unique"),
    (lambda m: m.with_head("sequence-classification", labels=["a", ""]), InputError, "non-empty"),
    (lambda m: m.with_head("sequence-classification", labels={0: "a", 2: "b"}), InputError, "0..1"),
    (lambda m: m.with_head("masked-lm", labels=["a", "b"]), InputError, "no labels"),
])
def test_bad_head_requests_raise_clear_errors(bodies, call, error, message):
    with pytest.raises(error, match=message):
        call(bodies["bert"])


def test_image_and_audio_heads_swap_and_round_trip(tmp_path):
    """ViT and Wav2Vec2 bodies take the classification heads their families register, with the same guarantees."""
    import numpy as np
    import transformers as tf
    from PIL import Image

    from tests.tiny_modal_models import make_vit, make_wav2vec2, noise_clip

    make_vit(tmp_path / "vit", kind="vit")
    make_wav2vec2(tmp_path / "w2v", kind="base")
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8))
    cases = [("vit", "image-classification", dict(images=[image]), tf.AutoModelForImageClassification, "pixel_values"),
             ("w2v", "audio-classification", dict(audio=[noise_clip(0.5)], sampling_rate=16000),
              tf.AutoModelForAudioClassification, "input_values")]
    for folder, task, inputs, auto, key in cases:
        body = load_model(str(tmp_path / folder))
        assert task in available_heads(body.family)
        swapped = body.with_head(task, labels=["yes", "no", "maybe"])
        assert type(swapped) is type(body) and head_is_trained(swapped) is False
        before, after = body.run(**inputs), swapped.run(**inputs)
        for a, b in zip(before.hidden_states, after.hidden_states):
            assert torch.equal(a, b)
        assert after.logits.shape == (1, 3)
        with pytest.raises(InputError, match="text models"):
            body.add_tokens(["cat.dog"])
        swapped.save_pretrained(tmp_path / f"{folder}-saved")
        reference = auto.from_pretrained(tmp_path / f"{folder}-saved", attn_implementation="eager").eval()
        assert reference.config.id2label == {0: "yes", 1: "no", 2: "maybe"}
        with torch.no_grad():
            theirs = reference(**{key: after.extras[key]}).logits
        torch.testing.assert_close(after.logits, theirs, atol=1e-4, rtol=0)
