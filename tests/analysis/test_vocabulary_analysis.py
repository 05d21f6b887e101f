"""analysis.vocabulary on tiny models: tokenization before/after, neighbours by cosine, prediction changes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from analysis.vocabulary import compare_tokenization, nearest_neighbours, prediction_change
from models import InputError, WorkbenchModel, load_model
from models.tokenization import TextTokenizer
from tests.tiny_models import make_checkpoint


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = {}
    for kind in ("bert", "bert-mlm", "bert-cls", "gpt2"):
        folder = tmp_path_factory.mktemp(kind)
        make_checkpoint(kind, folder)
        out[kind] = load_model(str(folder))
    return out


def test_tokenization_before_and_after(tiny):
    model = tiny["bert"]
    grown = model.add_tokens(["cat.dog"])
    change = compare_tokenization(model, grown, "the cat.dog sat")
    assert change.before == ["[CLS]", "the", "cat", ".", "dog", "sat", "[SEP]"]
    assert change.after == ["[CLS]", "the", "cat.dog", "sat", "[SEP]"]
    assert change.saved == 2 and change.after_ids[2] == grown.vocabulary_change.added["cat.dog"]


def test_nearest_neighbours_are_the_highest_cosines(tiny):
    model = tiny["bert"]
    grown = model.add_tokens(["cat.dog"], init="pieces")
    new_id = grown.vocabulary_change.added["cat.dog"]
    table = nearest_neighbours(grown, {"cat.dog": new_id}, k=3)
    weight = grown.network.embed.word.weight.detach()
    cosine = F.cosine_similarity(weight[new_id][None], weight, dim=-1)
    cosine[new_id] = -2
    expected = cosine.topk(3)
    assert table["neighbour_id"].tolist() == expected.indices.tolist()
    assert table["rank"].tolist() == [1, 2, 3] and new_id not in table["neighbour_id"].tolist()
    torch.testing.assert_close(torch.tensor(table["cosine"].tolist()), expected.values, atol=1e-6, rtol=0)
    with pytest.raises(InputError, match="outside"):
        nearest_neighbours(grown, [10_000])


def test_classifier_probabilities_move_only_when_the_text_uses_new_tokens(tiny):
    model = tiny["bert-cls"]
    grown = model.add_tokens(["cat.dog"], init="random", seed=1)
    same = prediction_change(model, grown, "the cat sat")
    assert len(same) == 2  # one row per label
    assert same["change"].abs().max() == 0
    moved = prediction_change(model, grown, "the cat.dog sat")
    assert moved["change"].abs().max() > 0
    torch.testing.assert_close(torch.tensor(moved["after"].sum()), torch.tensor(1.0, dtype=torch.float64), atol=1e-5,
                               rtol=0)


def with_registered_mask(model):
    """The tiny word-level tokenizer knows [MASK] only as a word; real BERT tokenizers never split it."""
    backend = Tokenizer.from_str(model.tokenizer.backend.to_str())
    backend.add_special_tokens(["[MASK]"])
    return WorkbenchModel(model.network, model.config, TextTokenizer(backend, dict(model.tokenizer.special)),
                          task=model.task)


def test_masked_lm_needs_a_mask_and_reports_new_tokens(tiny):
    model = with_registered_mask(tiny["bert-mlm"])
    grown = model.add_tokens(["cat.dog"])
    frame = prediction_change(model, grown, "the [MASK] sat", top_k=3)
    assert len(frame) >= 3 and {"output", "before", "after", "change"} <= set(frame.columns)
    with pytest.raises(InputError, match=r"\[MASK\]"):
        prediction_change(model, grown, "the cat sat")


def test_causal_lm_next_token_and_encoder_sentence_vector(tiny):
    gpt2 = tiny["gpt2"]
    frame = prediction_change(gpt2, gpt2.add_tokens(["cat.dog"]), "the cat", top_k=2)
    assert len(frame) >= 2 and (frame["after"] <= 1).all()
    encoder = tiny["bert"]
    vector = prediction_change(encoder, encoder.add_tokens(["cat.dog"]), "the cat sat")
    assert vector["after"].iloc[0] == pytest.approx(1.0, abs=1e-6)  # unchanged text: the same sentence vector
