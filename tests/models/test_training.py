"""The trainer: reproducible with a seed, trains only what it is told, learns separable data, stops early."""
from __future__ import annotations

import itertools

import pytest
import torch

from models import InputError, load_model
from models.labelled_data import LabelledTexts, LabelledTokens
from models.task_heads import head_is_trained
from models.training import (IGNORE, TrainingConfig, _Batches, encode_examples, evaluate, linear_schedule,
                             run_from_layer, run_to_layer, select_parameters, train)
from tests.tiny_models import make_checkpoint

GOOD = ["i love this film", "very good movie", "good film", "i love that movie", "a very good film", "love it"]
BAD = ["i hate this film", "very bad movie", "bad film", "i hate that movie", "a very bad film", "hate it"]


def sentences() -> tuple[LabelledTexts, LabelledTexts]:
    """Separable by one word, in many frames: a tiny model can learn it in a few epochs."""
    rows = []
    for (text, label), tail in itertools.product([(t, "positive") for t in GOOD] + [(t, "negative") for t in BAD],
                                                 ["", " .", " and then"]):
        rows.append((text + tail, label))
    train_rows, eval_rows = rows[::3] + rows[1::3], rows[2::3]
    make = lambda rs, split: LabelledTexts(tuple(t for t, _ in rs), tuple(l for _, l in rs), (split,) * len(rs))
    return make(train_rows, "train"), make(eval_rows, "test")


def tagged() -> LabelledTokens:
    words = [("the", "cat", "sat"), ("a", "dog", "ran", "away"), ("the", "dog", "sat", "on", "the", "mat"),
             ("who", "was", "it", "?"), ("a", "cat", "and", "a", "dog")]
    tags = tuple(tuple("B-ANIMAL" if w in ("cat", "dog") else "O" for w in row) for row in words)
    return LabelledTokens(tuple(words), tags, ("train",) * len(words))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = {}
    for kind in ("bert", "gpt2", "llama"):
        out[kind] = tmp_path_factory.mktemp(kind)
        make_checkpoint(kind, out[kind])
    return out


@pytest.fixture(scope="module")
def classifier(checkpoints):
    return load_model(str(checkpoints["bert"])).with_head("sequence-classification", labels=["negative", "positive"])


def test_same_seed_same_model_other_seed_other_model(classifier):
    data, held = sentences()
    config = TrainingConfig(epochs=3, batch_size=4, learning_rate=1e-3, trainable=("all",), seed=7)
    a, b = train(classifier, data, held, config), train(classifier, data, held, config)
    assert a.step_losses == b.step_losses
    for (name, p), q in zip(a.model.network.named_parameters(), b.model.network.parameters()):
        assert torch.equal(p, q), name
    c = train(classifier, data, held, TrainingConfig(epochs=3, batch_size=4, learning_rate=1e-3, trainable=("all",),
                                                     seed=8))
    assert c.step_losses != a.step_losses


def test_training_leaves_the_given_model_alone_and_flags_the_head_trained(classifier):
    before = {k: v.clone() for k, v in classifier.network.state_dict().items()}
    result = train(classifier, *sentences(), TrainingConfig(epochs=1, trainable=("all",)))
    assert all(torch.equal(v, classifier.network.state_dict()[k]) for k, v in before.items())
    assert head_is_trained(classifier) is False and head_is_trained(result.model) is True
    assert result.model.network is not classifier.network


def test_head_only_training_changes_the_head_and_nothing_else(classifier):
    result = train(classifier, *sentences(), TrainingConfig(epochs=2, trainable=("head",)))
    trained = result.model.network.state_dict()
    for name, value in classifier.network.state_dict().items():
        if name.startswith("head."):
            assert not torch.equal(value, trained[name]), name
        else:
            assert torch.equal(value, trained[name]), name
    assert result.trained_parameter_names == ["head.classifier.bias", "head.classifier.weight"]
    assert result.trained_parameters == 2 * 32 + 2


def test_full_fine_tuning_learns_a_separable_set(classifier):
    data, held = sentences()
    before = evaluate(classifier, held)
    result = train(classifier, data, held, TrainingConfig(epochs=15, batch_size=8, learning_rate=3e-3,
                                                          trainable=("all",), early_stopping_patience=None))
    after = evaluate(result.model, held)
    assert after.accuracy >= 0.9 > before.accuracy - 0.0001 or after.accuracy == 1.0
    assert after.loss < before.loss
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert after.accuracy == pytest.approx(result.history[result.best_epoch - 1].eval_accuracy)
    assert len(after.predictions) == len(held) and set(after.predictions) <= {"negative", "positive"}


def test_token_classifier_learns_word_tags(checkpoints):
    tagger = load_model(str(checkpoints["bert"])).with_head("token-classification", labels=["O", "B-ANIMAL"])
    data = tagged()
    result = train(tagger, data, data, TrainingConfig(epochs=25, batch_size=2, learning_rate=5e-3,
                                                      trainable=("all",), early_stopping_patience=None))
    scored = evaluate(result.model, data)
    assert scored.accuracy == 1.0
    assert scored.predictions[0] == ["O", "B-ANIMAL", "O"]


def test_word_labels_sit_on_each_words_first_piece(checkpoints):
    tagger = load_model(str(checkpoints["bert"])).with_head("token-classification", labels=["O", "B-ANIMAL"])
    encoded = encode_examples(tagger, tagged(), {"O": 0, "B-ANIMAL": 1}, max_length=64)
    # [CLS] the cat sat [SEP] [PAD]...: special tokens and padding are skipped by the loss
    assert encoded.labels[0, :5].tolist() == [IGNORE, 0, 1, 0, IGNORE]
    assert (encoded.labels[0, 5:] == IGNORE).all()


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_running_from_a_cached_layer_equals_the_full_forward(checkpoints, kind):
    model = load_model(str(checkpoints[kind])).with_head("sequence-classification", labels=["a", "b"])
    enc = model.encode(["the cat sat on the mat .", "a dog ."])
    out = model.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                        token_type_ids=enc.token_type_ids, capture=False)
    for start in range(model.n_layers + 1):
        logits = run_from_layer(model, out.resid[start], enc.attention_mask, start)
        torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)
        state = run_to_layer(model, enc.input_ids, enc.attention_mask, enc.token_type_ids, start)
        torch.testing.assert_close(state, out.resid[start], atol=1e-5, rtol=0)


def test_first_position_shortcut_equals_the_full_forward(classifier):
    enc = classifier.encode(["the cat sat on the mat .", "a dog ."])
    out = classifier.forward(input_ids=enc.input_ids, attention_mask=enc.attention_mask,
                             token_type_ids=enc.token_type_ids, capture=False)
    for start in range(classifier.n_layers + 1):
        logits = run_from_layer(classifier, out.resid[start], enc.attention_mask, start, first_position_only=True)
        torch.testing.assert_close(logits, out.logits, atol=1e-5, rtol=0)


def test_cached_batches_give_the_logits_of_uncached_ones(classifier):
    data, _ = sentences()
    encoded = encode_examples(classifier, data, {"negative": 0, "positive": 1}, 64)
    rows = torch.tensor([0, 5, 9])
    cached, labels = _Batches(classifier, encoded, start=classifier.n_layers).logits(rows)
    full, same_labels = _Batches(classifier, encoded, start=None).logits(rows)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)
    assert torch.equal(labels, same_labels)


def test_early_stopping_restores_the_best_epoch(classifier):
    data, held = sentences()
    result = train(classifier, data, held, TrainingConfig(epochs=10, learning_rate=1e-9, early_stopping_patience=2))
    assert result.stopped_early and len(result.history) == 3 and result.best_epoch == 1


def test_callback_sees_every_step_and_epoch_and_can_cancel(classifier):
    data, held = sentences()
    seen = []
    train(classifier, data, held, TrainingConfig(epochs=2, batch_size=8), callback=seen.append)
    steps = [p for p in seen if p.epoch_result is None]
    epochs = [p for p in seen if p.epoch_result is not None]
    assert [p.step for p in steps] == list(range(1, 2 * 3 + 1)) and steps[0].total_steps == 6  # 24 examples / 8
    assert [p.epoch_result.epoch for p in epochs] == [1, 2] and epochs[0].epoch_result.eval_accuracy is not None
    cancelled = train(classifier, data, held, TrainingConfig(epochs=5, batch_size=8), callback=lambda p: p.step == 2)
    assert len(cancelled.step_losses) == 2 and cancelled.stopped_early


def test_linear_warmup_then_decay():
    factor = linear_schedule(10, 110)
    assert [factor(s) for s in (0, 5, 10, 60, 110, 120)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]


def test_trainable_groups_and_prefixes(classifier):
    assert set(select_parameters(classifier, ("pooler",))) == {"pooler.dense.weight", "pooler.dense.bias"}
    last = select_parameters(classifier, ("last_layer",))
    assert last and all(name.startswith("blocks.1.") for name in last)
    norms = select_parameters(classifier, ("norms",))
    assert "embed.norm.weight" in norms and "blocks.0.ln1.bias" in norms and "blocks.0.attn.q_proj.weight" not in norms
    assert set(select_parameters(classifier, ("blocks.0.",))) == {n for n, _ in classifier.network.named_parameters()
                                                                  if n.startswith("blocks.0.")}
    with pytest.raises(InputError, match="Nothing to train matches 'decoder'"):
        select_parameters(classifier, ("decoder",))


def test_bad_requests_raise_clear_errors(checkpoints, classifier):
    data, held = sentences()
    with pytest.raises(InputError, match="no task head|has a no head"):
        train(load_model(str(checkpoints["bert"])), data)
    with pytest.raises(InputError, match="does not know: 'negative', 'positive'"):
        train(classifier.with_head("sequence-classification", labels=["bad", "good"]), data)
    with pytest.raises(InputError, match="tagged words, for a token-classification head"):
        train(classifier, tagged())
    with pytest.raises(InputError, match="epochs must be at least 1"):
        train(classifier, data, config=TrainingConfig(epochs=0))
    with pytest.raises(InputError, match="needs a sequence-classification or token-classification head"):
        train(load_model(str(checkpoints["gpt2"])), data)
