"""add_tokens: old outputs unchanged, new tokens are one id, the three initialisations give their stated values."""
from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, normalizers

from models import InputError, WorkbenchModel, load_model
from models.tokenization import TextTokenizer
from tests.tiny_models import make_checkpoint

TEXT = "the cat sat on the mat ."

# The tiny checkpoints have 64 embedding rows for a 39-token tokenizer, as GPT-2-style checkpoints pad theirs:
# a new token takes the next tokenizer id, reusing an unused row, and the matrix grows only past its end.


def unchanged_columns(model, new_ids):
    return [i for i in range(model.config.vocab_size) if i not in set(new_ids)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    out = {}
    for kind in ("bert-mlm", "gpt2", "llama"):
        out[kind] = tmp_path_factory.mktemp(kind)
        make_checkpoint(kind, out[kind])
    return out


@pytest.fixture(scope="module")
def mlm(folders):
    return load_model(str(folders["bert-mlm"]))


def test_old_tokens_give_exactly_the_old_outputs(mlm):
    grown = mlm.add_tokens(["COVID-19", "<sep2>"])
    before, after = mlm.run(TEXT), grown.run(TEXT)
    assert torch.equal(before.input_ids, after.input_ids)
    for a, b in zip(before.hidden_states, after.hidden_states):
        assert torch.equal(a, b)
    new_ids = list(grown.vocabulary_change.added.values())
    assert new_ids == [mlm.tokenizer.vocab_size, mlm.tokenizer.vocab_size + 1]
    keep = unchanged_columns(mlm, new_ids)
    assert torch.equal(before.logits[..., keep], after.logits[..., keep])  # new tokens only add outputs
    assert not torch.equal(before.logits[..., new_ids], after.logits[..., new_ids])  # their rows were re-initialised


def test_new_token_is_one_id_in_running_text(mlm):
    grown = mlm.add_tokens(["COVID-19"])
    new_id = grown.vocabulary_change.added["COVID-19"]
    assert new_id == mlm.tokenizer.vocab_size
    old_split = mlm.run("COVID-19").tokens[0]
    assert len(old_split) > 3  # [CLS] + several pieces + [SEP]
    trace = grown.run("the cat sat on COVID-19 .")
    assert trace.input_ids[0].tolist().count(new_id) == 1
    assert len(trace.tokens[0]) == len(mlm.run("the cat sat on cat .").tokens[0])
    assert grown.tokenizer.decode([new_id]) == "COVID-19"


def test_special_token_is_never_split_and_listed_as_special(mlm):
    grown = mlm.add_tokens(["<sep2>"], special=True)
    new_id = grown.vocabulary_change.added["<sep2>"]
    trace = grown.run("the cat <sep2> sat")
    assert trace.tokens[0] == ["[CLS]", "the", "cat", "<sep2>", "sat", "[SEP]"]
    assert trace.input_ids[0, 3] == new_id
    assert "<sep2>" in grown.tokenizer.extra_config["additional_special_tokens"]
    assert "<sep2>" in grown.tokenizer.decode(trace.input_ids[0].tolist(), skip_special_tokens=False)
    assert "<sep2>" not in grown.tokenizer.decode(trace.input_ids[0].tolist(), skip_special_tokens=True)


def test_pieces_init_is_the_mean_of_the_old_pieces(mlm):
    grown = mlm.add_tokens(["cat.dog"], init="pieces")
    pieces = mlm.tokenizer.backend.encode("cat.dog", add_special_tokens=False).ids
    assert len(pieces) >= 2
    old = mlm.network.embed.word.weight
    new = grown.network.embed.word.weight[grown.vocabulary_change.added["cat.dog"]]
    torch.testing.assert_close(new, old[pieces].mean(0), atol=1e-7, rtol=0)
    assert grown.vocabulary_change.pieces["cat.dog"] == mlm.tokenizer.backend.encode("cat.dog", add_special_tokens=False).tokens
    # the MLM decoder bias follows the same rule
    bias_old, bias_new = mlm.network.head.decoder.bias, grown.network.head.decoder.bias
    new_id = grown.vocabulary_change.added["cat.dog"]
    torch.testing.assert_close(bias_new[new_id], bias_old[pieces].mean(), atol=1e-7, rtol=0)


def test_mean_init_is_the_mean_of_all_old_rows(mlm):
    grown = mlm.add_tokens(["COVID-19", "<sep2>"], init="mean")
    old = mlm.network.embed.word.weight
    for index in grown.vocabulary_change.added.values():
        torch.testing.assert_close(grown.network.embed.word.weight[index], old.mean(0), atol=1e-7, rtol=0)


def test_random_init_has_the_embeddings_own_spread_and_is_seeded(mlm):
    words = [f"word{i}x" for i in range(60)]
    a = mlm.add_tokens(words, init="random", seed=3)
    b = mlm.add_tokens(words, init="random", seed=3)
    c = mlm.add_tokens(words, init="random", seed=4)
    old = mlm.network.embed.word.weight[: mlm.tokenizer.vocab_size]  # the rows tokens use
    first = mlm.tokenizer.vocab_size
    assert a.config.vocab_size == first + 60 > mlm.config.vocab_size  # past the padded rows: the matrix grew
    rows = a.network.embed.word.weight[first:]  # (60, d)
    assert rows.shape[0] == 60
    assert torch.equal(rows, b.network.embed.word.weight[first:])
    assert not torch.equal(rows, c.network.embed.word.weight[first:])
    old = mlm.network.embed.word.weight
    assert abs(rows.std().item() / old.std().item() - 1) < 0.1  # 1,920 draws: the estimate is within ~2%
    assert abs(rows.mean().item()) < 0.1 * old.std().item()


def uncased(model):
    """The same model behind a lower-casing tokenizer, as uncased BERT's."""
    backend = Tokenizer.from_str(model.tokenizer.backend.to_str())
    backend.normalizer = normalizers.Lowercase()
    return WorkbenchModel(model.network, model.config, TextTokenizer(backend, dict(model.tokenizer.special)),
                          task=model.task)


def test_duplicates_and_existing_tokens_are_reported_not_added_twice(mlm):
    mlm = uncased(mlm)
    grown = mlm.add_tokens(["COVID-19", "covid-19", "cat", "COVID-19", "[SEP]", "Cat"])
    change = grown.vocabulary_change
    assert list(change.added) == ["COVID-19"]
    assert change.duplicates == ["covid-19", "COVID-19", "Cat"]  # an uncased tokenizer reads them as one token
    cat = mlm.tokenizer.token_to_id("cat")
    assert change.existing == {"cat": cat, "[SEP]": mlm.tokenizer.token_to_id("[SEP]")}
    assert grown.tokenizer.vocab_size == mlm.tokenizer.vocab_size + 1
    again = grown.add_tokens(["COVID-19"])
    assert again.vocabulary_change.added == {} and again.tokenizer.vocab_size == grown.tokenizer.vocab_size
    assert "already in the vocabulary" in again.vocabulary_change.summary()


def test_untied_lm_head_grows_by_the_same_rule(folders):
    llama = load_model(str(folders["llama"]))
    assert llama.network.head.decoder.weight is not llama.network.embed.word.weight
    grown = llama.add_tokens(["cat.dog"])
    pieces = llama.tokenizer.backend.encode("cat.dog", add_special_tokens=False).ids
    new_id = grown.vocabulary_change.added["cat.dog"]
    torch.testing.assert_close(grown.network.head.decoder.weight[new_id],
                               llama.network.head.decoder.weight[pieces].mean(0), atol=1e-7, rtol=0)
    before, after = llama.run(TEXT), grown.run(TEXT)
    keep = unchanged_columns(llama, [new_id])
    assert torch.equal(before.logits[..., keep], after.logits[..., keep])


def test_tied_lm_head_stays_tied(folders):
    gpt2 = load_model(str(folders["gpt2"]))
    words = [f"word{i}x" for i in range(40)]
    grown = gpt2.add_tokens(words)
    assert grown.network.head.decoder.weight is grown.network.embed.word.weight
    assert grown.network.embed.word.weight.shape[0] == gpt2.tokenizer.vocab_size + 40 == grown.config.vocab_size
    assert grown.run("the word7x sat").logits.shape[-1] == grown.config.vocab_size


@pytest.mark.parametrize("tokens, message", [
    (["COVID-19", ""], "empty"),
    (["COVID-19", "   "], "empty"),
    ([], "No tokens"),
    (["ok", 3], "strings"),
    ([" padded"], "spaces"),
])
def test_bad_token_lists_raise_and_change_nothing(mlm, tokens, message):
    size, rows = mlm.tokenizer.vocab_size, mlm.network.embed.word.weight.shape[0]
    with pytest.raises(InputError, match=message):
        mlm.add_tokens(tokens)
    assert mlm.tokenizer.vocab_size == size and mlm.tokenizer.token_to_id("COVID-19") is None
    assert mlm.network.embed.word.weight.shape[0] == mlm.config.vocab_size == rows


def test_unknown_init_is_rejected(mlm):
    with pytest.raises(InputError, match="pieces, mean, random"):
        mlm.add_tokens(["COVID-19"], init="zeros")


def test_the_original_model_is_not_changed(mlm):
    weight = mlm.network.embed.word.weight.clone()
    grown = mlm.add_tokens(["COVID-19"])
    assert mlm.tokenizer.token_to_id("COVID-19") is None
    assert torch.equal(mlm.network.embed.word.weight, weight)
    assert grown.network is not mlm.network and grown.tokenizer is not mlm.tokenizer


def test_grown_model_round_trips_into_transformers(mlm, tmp_path):
    import transformers as tf
    grown = mlm.add_tokens(["COVID-19"]).add_tokens(["<sep2>"], special=True)
    grown.save_pretrained(tmp_path)
    tokenizer = tf.AutoTokenizer.from_pretrained(tmp_path)
    reference, info = tf.AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager",
                                                              output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    reference.eval()
    texts = ["the cat sat on COVID-19 <sep2> the mat .", "a dog ."]
    trace = grown.run(texts)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    assert torch.equal(encoded["input_ids"], trace.input_ids)
    assert "<sep2>" in tokenizer.all_special_tokens
    with torch.no_grad():
        theirs = reference(**encoded).logits
    real = trace.attention_mask.bool()
    torch.testing.assert_close(trace.logits[real], theirs[real], atol=1e-4, rtol=0)
    again = load_model(str(tmp_path))
    assert torch.equal(again.run(texts).logits, trace.logits)
