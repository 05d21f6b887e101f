"""The committed `numbers-to-words` T5 checkpoint: what its model card says, in transformers and in ours.

transformers' own classes are the reference (T5ForConditionalGeneration + AutoTokenizer from the
folder): the held-out exact match stated on the card is recomputed on the whole held-out split
(1,000 numbers, greedy), our loader's greedy decoding gives the same ids as transformers' generate,
and our trace's cross-attention aligns words with the digits they read.
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
import transformers

import models
from analysis.alignment import alignment, strongest_sources, written_tokens
from analysis.attention import MEAN_OF_LAYER

ROOT = Path(__file__).resolve().parents[2]
NAME = "numbers-to-words"
MODEL_DIR = ROOT / "models" / "embedded" / NAME


def _training_script():
    """scripts/train_translator.py as a module: the split and the reference words come from the one place."""
    spec = importlib.util.spec_from_file_location("train_translator", ROOT / "scripts" / "train_translator.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _training_script()
TRAIN, HELD_OUT = SCRIPT.split_numbers()


def card_exact_match() -> float:
    match = re.search(r"Held-out exact match: ([0-9.]+)%", (MODEL_DIR / "README.md").read_text())
    assert match, "the model card must state 'Held-out exact match: NN.NN%'"
    return float(match.group(1))


@pytest.fixture(scope="module")
def reference():
    model = transformers.T5ForConditionalGeneration.from_pretrained(MODEL_DIR, local_files_only=True).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
    return model, tokenizer


@pytest.fixture(scope="module")
def ours():
    return models.load_model(NAME)


def test_split_and_convention():
    assert len(HELD_OUT) == 1000 and len(TRAIN) == 9000 and not set(TRAIN) & set(HELD_OUT)
    assert set(TRAIN) | set(HELD_OUT) == set(range(10_000))
    words = SCRIPT.number_to_words
    assert [words(n) for n in (0, 13, 47, 105, 1200, 4071, 9999)] == [
        "zero", "thirteen", "forty seven", "one hundred five", "one thousand two hundred",
        "four thousand seventy one", "nine thousand nine hundred ninety nine"]


def test_folder_is_small_and_complete():
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "README.md"} <= names
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 10_000_000


def test_tokenizer_one_token_per_digit_and_word(reference):
    _, tokenizer = reference
    assert tokenizer.convert_ids_to_tokens(tokenizer("4071")["input_ids"]) == ["4", "0", "7", "1", "</s>"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("forty seven")["input_ids"]) == ["forty", "seven", "</s>"]


def test_transformers_reaches_the_cards_held_out_exact_match(reference):
    model, tokenizer = reference
    exact, wrong = SCRIPT.exact_match(model, tokenizer, HELD_OUT)
    assert round(100 * exact, 2) == card_exact_match(), wrong[:10]


def test_our_greedy_output_reaches_the_cards_held_out_exact_match(ours):
    texts = [str(n) for n in HELD_OUT]
    generated = [ours.decode([i for i in ids if i != 1]) for b in range(0, len(texts), 250)
                 for ids in ours.generate(texts[b:b + 250])]
    wrong = [(n, g) for n, g in zip(HELD_OUT, generated) if g != SCRIPT.number_to_words(n)]
    assert round(100 * (1 - len(wrong) / len(HELD_OUT)), 2) == card_exact_match(), wrong[:10]


def test_ours_equals_transformers_generate(ours, reference):
    model, tokenizer = reference
    texts = [str(n) for n in HELD_OUT[::97]]  # 11 held-out numbers, 1 to 4 digits
    batch = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    theirs = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=SCRIPT.MAX_NEW_TOKENS)
    for text, row, mine in zip(texts, theirs.tolist(), ours.generate(texts, max_new_tokens=SCRIPT.MAX_NEW_TOKENS)):
        expected = [i for i in row[1:] if i != tokenizer.pad_token_id]  # without the start token and padding
        assert mine == expected, text
    trace = ours.run(texts[3])
    with torch.no_grad():
        out = model(input_ids=trace.extras["source_ids"], decoder_input_ids=trace.input_ids, output_attentions=True)
    for layer, cross in enumerate(out.cross_attentions):
        torch.testing.assert_close(trace.cross_attentions[layer], cross, atol=1e-5, rtol=1e-4)


# What the model learned, measured on the held-out sample below before these thresholds were written: a word that
# names one digit with a units word ("four" of 4071's thousands, "eight" of 5803's hundreds, "seven" of 47's units)
# reads that digit in layer 1, all four heads agreeing (mean over heads: 653 of 654 such words have their
# largest weight on the digit). Tens words ("forty") are read by one head, layer 1 head 1 (162 of 192); the other
# heads of that layer look at </s>, so the mean of heads does NOT align them (71 of 192), and neither does any
# aggregate of layer 2. That head reads the tens of four-digit numbers (nine in ten held-out numbers); in shorter
# ones it mostly looks at </s> instead ("forty" of 47: 0.65 on "7"; "eighty" of 385 and "sixty" of 268: on </s>).
# "thousand" and "hundred" align with their digit only about half the time (not tested).
LAYER = 1
TENS_HEAD = 1
SAMPLE = HELD_OUT[::4]   # 250 held-out numbers


def _aligned_words(n: int) -> list[tuple[int, int, str]]:
    """(row of the written word, source position of its digit, kind) for the words that name one digit."""
    digits = str(n)
    position = {place: len(digits) - 1 - place for place in range(len(digits))}   # place 0 = units
    rows, out = 0, []
    if n >= 1000:
        out.append((rows, position[3], "units word")); rows += 2                   # "four thousand"
    if n % 1000 >= 100:
        out.append((rows, position[2], "units word")); rows += 2                   # "three hundred"
    rest = n % 100
    if rest >= 20:
        out.append((rows, position[1], "tens word")); rows += 1
        if rest % 10:
            out.append((rows, position[0], "units word"))
    elif rest < 10 and (rest or n == 0):
        out.append((rows, position[0], "units word"))
    return out                                                                     # teens ("fifteen") are left out


def _strongest(trace, example: int, head: int | str) -> list[int]:
    return strongest_sources(alignment(trace, LAYER, head, example=example))


@pytest.mark.parametrize("number, word, digit", [
    (4071, "four", 0), (4071, "one", 3), (5803, "five", 0), (5803, "eight", 1), (5803, "three", 3),
    (1200, "two", 1), (47, "seven", 1), (9999, "nine", 0)])
def test_units_words_read_their_digit_in_the_mean_of_layer_1(ours, number, word, digit):
    trace = ours.run(str(number))
    written = written_tokens(trace)
    row = written.index(word) if (number, word) != (4071, "one") else len(written) - 2
    assert trace.extras["outputs"][0] == SCRIPT.number_to_words(number)
    weights = alignment(trace, LAYER, MEAN_OF_LAYER)
    assert int(weights[row].argmax()) == digit, (written, weights[row])


@pytest.mark.parametrize("number, word, digit", [(1942, "forty", 2), (7350, "fifty", 2), (6021, "twenty", 2),
                                                 (4071, "seventy", 2)])
def test_tens_words_of_four_digit_numbers_read_their_digit_in_layer_1_head_1(ours, number, word, digit):
    trace = ours.run(str(number))
    written = written_tokens(trace)
    weights = alignment(trace, LAYER, TENS_HEAD)
    assert int(weights[written.index(word)].argmax()) == digit, (written, weights[written.index(word)])


def test_alignment_over_a_held_out_sample(ours):
    counts = {(kind, head): [0, 0] for kind in ("units word", "tens word") for head in (MEAN_OF_LAYER, TENS_HEAD)}
    for start in range(0, len(SAMPLE), 50):
        batch = SAMPLE[start:start + 50]
        trace = ours.run([str(n) for n in batch])      # padded batch: cross-attention never sees source padding
        for example, n in enumerate(batch):
            for head in (MEAN_OF_LAYER, TENS_HEAD):
                strongest = _strongest(trace, example, head)
                for row, digit, kind in _aligned_words(n):
                    counts[kind, head][0] += strongest[row] == digit
                    counts[kind, head][1] += 1
    share = {key: hit / total for key, (hit, total) in counts.items()}
    assert share["units word", MEAN_OF_LAYER] >= 0.97, share
    assert share["tens word", TENS_HEAD] >= 0.75, share
    assert share["tens word", MEAN_OF_LAYER] <= 0.5, share   # as stated above: the mean hides the tens head


def test_translation_and_text2text_open_on_the_embedded_translator():
    from models.pipelines import pipeline
    assert pipeline("translation")(["4071", "12"]) == [{"translation_text": "four thousand seventy one"},
                                                       {"translation_text": "twelve"}]
    assert pipeline("text2text-generation")("905") == [{"generated_text": "nine hundred five"}]
