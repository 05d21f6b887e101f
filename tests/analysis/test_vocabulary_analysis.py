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


def next_token_rows(before, after, p_old: torch.Tensor, p_new: torch.Tensor, top_k: int) -> list[tuple]:
    """(token, before, after) expected from prediction_change: the new model's top ids, then the old model's.

    A token that `add_tokens` added had probability 0 before, even when its id reuses an embedding
    row the old model had and scored (these tiny checkpoints have 64 rows, their tokenizers ~40 tokens).
    """
    added = set(after.vocabulary_change.added.values())
    ids = list(dict.fromkeys(p_new.topk(top_k).indices.tolist() + p_old.topk(top_k).indices.tolist()))
    return [(after.tokenizer.id_to_token(i), 0.0 if i in added else float(p_old[i]), float(p_new[i])) for i in ids]


def assert_rows(frame, expected: list[tuple]) -> None:
    assert frame["output"].tolist() == [token for token, _, _ in expected]
    torch.testing.assert_close(torch.tensor(frame[["before", "after"]].to_numpy()),
                               torch.tensor([[b, a] for _, b, a in expected], dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.tensor(frame["change"].to_numpy()), torch.tensor(frame["after"].to_numpy())
                               - torch.tensor(frame["before"].to_numpy()), atol=1e-12, rtol=0)


def test_masked_lm_needs_a_mask_and_reports_new_tokens(tiny):
    model = with_registered_mask(tiny["bert-mlm"])
    grown = model.add_tokens(["cat.dog"])
    new_id = grown.vocabulary_change.added["cat.dog"]
    text = "the [MASK] sat"
    assert grown.encode(text).tokens[0] == ["[CLS]", "the", "[MASK]", "sat", "[SEP]"]
    p_old = model.run(text).logits[0, 2].softmax(-1)  # (V,) at the mask, position 2
    p_new = grown.run(text).logits[0, 2].softmax(-1)  # (V,): the new token competes for probability too
    assert p_new.shape == p_old.shape == (64,) and new_id < 64  # the new token reuses an unused embedding row

    frame = prediction_change(model, grown, text, top_k=3)
    assert_rows(frame, next_token_rows(model, grown, p_old, p_new, 3))
    assert 3 <= len(frame) <= 6

    # a k that just lets the new token into the new model's top k: it pushes out the old model's k-th token,
    # which is listed after it, from the old model's top k
    k = int((p_new > p_new[new_id]).sum()) + 1
    displaced = model.tokenizer.id_to_token(int(p_old.topk(k).indices[-1]))
    frame = prediction_change(model, grown, text, top_k=k)
    assert_rows(frame, next_token_rows(model, grown, p_old, p_new, k))
    assert len(frame) == k + 1 and frame["output"].tolist()[-2:] == ["cat.dog", displaced]
    new_rows = frame[frame["before"] == 0]
    assert new_rows["output"].tolist() == ["cat.dog"]  # the only output that did not exist before
    assert float(new_rows["after"].iloc[0]) == pytest.approx(float(p_new[new_id]), abs=1e-7) and float(p_new[new_id]) > 0

    with pytest.raises(InputError, match=r"\[MASK\]"):
        prediction_change(model, grown, "the cat sat")


def test_causal_lm_next_token_and_encoder_sentence_vector(tiny):
    gpt2 = tiny["gpt2"]
    grown = gpt2.add_tokens(["cat.dog"])
    p_old = gpt2.run("the cat").logits[0, -1].softmax(-1)  # (V,) after the last token, "cat"
    p_new = grown.run("the cat").logits[0, -1].softmax(-1)
    frame = prediction_change(gpt2, grown, "the cat", top_k=2)
    assert_rows(frame, next_token_rows(gpt2, grown, p_old, p_new, 2))
    # the text does not use the new token, so the old tokens' logits are unchanged: their probabilities
    # move only by the one row "cat.dog" took over, the same factor for every old token
    kept = frame[frame["output"] != "cat.dog"]
    assert len(kept) >= 2
    ratios = torch.tensor((kept["after"] / kept["before"]).to_numpy())
    torch.testing.assert_close(ratios, torch.full_like(ratios, float(ratios[0])), atol=1e-5, rtol=0)

    encoder = tiny["bert"]
    grown = encoder.add_tokens(["cat.dog"])
    same = prediction_change(encoder, grown, "the cat sat")
    assert same["output"].tolist() == ["sentence vector cosine(before, after)"]
    assert same["after"].iloc[0] == pytest.approx(1.0, abs=1e-6)  # unchanged text: the same sentence vector
    moved = prediction_change(encoder, grown, "the cat.dog sat")
    old, new = encoder.run("the cat.dog sat"), grown.run("the cat.dog sat")
    assert (old.lengths[0], new.lengths[0]) == (7, 5)  # [CLS] the cat . dog sat [SEP] against one new token
    expected = F.cosine_similarity(old.hidden_states[-1][0, :7].mean(0), new.hidden_states[-1][0, :5].mean(0), dim=0)
    assert float(moved["after"].iloc[0]) == pytest.approx(float(expected), abs=1e-6)
    assert float(moved["after"].iloc[0]) < 0.999  # a different tokenization gives a different sentence vector
