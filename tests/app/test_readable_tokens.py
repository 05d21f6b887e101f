"""Readable tokens on every page (issue 18, bug 7): no "Ġ", "Ċ" or "âĢĻ" from a byte-level BPE tokenizer.

A tiny Llama gets a byte-level vocabulary (GPT-2's byte table, as SmolLM2's tokenizer writes it),
so the pages see the same raw pieces a real byte-level model gives them.
"""
from __future__ import annotations

import json
import string

import pytest
from tokenizers import Tokenizer, decoders, models as tokenizer_models, pre_tokenizers

from app.token_display import display_token, display_tokens, is_byte_level, readable_token
from tests.app.page_helpers import chart_traces, decode, iframe_html, open_page
from tests.tiny_models import make_checkpoint, save_tokenizer

TEXT = "the cat\u2019s\nthe mat."   # a curly apostrophe (three UTF-8 bytes) and a newline
RAW_MARKS = set("ĠĊĉĢĻ") | {"âĢĻ"}


def raw_marks_in(texts) -> list[str]:
    return [t for t in texts if any(mark in str(t) for mark in RAW_MARKS)]


@pytest.fixture
def byte_level_llama(tmp_path):
    """A tiny Llama whose 64 token ids are all byte-level BPE pieces, as SmolLM2's are."""
    make_checkpoint("llama", tmp_path, initializer_range=0.3)
    pieces = ["<|endoftext|>", "[UNK]", "the", "Ġthe", "Ġcat", "âĢĻ", "s", "Ċ", "Ġmat", ".", "Ġsat", "Ġon", "âĢľ",
              "âĢĿ", "cafÃ©"]
    pieces += [f"Ġ{a}{b}" for a in string.ascii_lowercase for b in "aeiou"][: 64 - len(pieces)]
    tokenizer = Tokenizer(tokenizer_models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    save_tokenizer(tokenizer, tmp_path, {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
                                         "pad_token": "<|endoftext|>", "unk_token": "[UNK]"})
    return str(tmp_path)


def test_byte_level_pieces_are_decoded_and_markers_drawn():
    raw = ["the", "Ġcat", "âĢĻ", "s", "Ċ", "cafÃ©"]
    assert is_byte_level(raw) and not is_byte_level(["[CLS]", "café", "##s"])
    assert display_tokens(raw) == ["the", "·cat", "\u2019", "s", "↵", "café"]
    assert readable_token("Ġcat") == " cat" and display_token("âĢĻ") == "\u2019"
    assert display_tokens(["[CLS]", "café", "##s", "▁the"]) == ["[CLS]", "café", "##s", "·the"]  # WordPiece, SentencePiece
    assert display_token("âĢ") == "�"  # part of a multi-byte character


def test_heads_page_shows_readable_tokens(tiny_models, byte_level_llama):
    at = open_page("heads.py", query={"model": byte_level_llama})
    at.text_area(key="heads_free").set_value(TEXT).run()
    at.multiselect(key="heads_mask").select("L0.H1").run()
    assert not at.exception and not at.error
    bars = chart_traces(at, "heads_prediction")
    outputs = list(bars[0]["x"])
    assert outputs and not raw_marks_in(outputs) and any(o.startswith("·") for o in outputs)
    attention = chart_traces(at, "heads_attn_before")[0]
    assert "1:·cat" in attention["x"] and "2:\u2019" in attention["x"] and "4:↵" in attention["x"]
    assert not raw_marks_in(attention["x"])
    assert not raw_marks_in(c.value for c in at.caption)


def test_hidden_states_page_shows_readable_tokens(tiny_models, byte_level_llama):
    at = open_page("hidden_states.py", query={"model": byte_level_llama})
    at.text_area(key="hidden_free").set_value(TEXT).run()
    assert not at.exception and not at.error
    lens = chart_traces(at, "hidden_lens_figure")[0]
    cells = [t for row in lens["text"] for t in row]
    hover = [t for row in lens["customdata"] for t in row]
    assert not raw_marks_in(cells) and not raw_marks_in(hover) and not raw_marks_in(lens["x"])
    assert any(t.startswith("·") for t in cells)  # predicted tokens with a leading space, drawn readable
    assert "2:\u2019" in list(lens["x"])
    norms = chart_traces(at, "hidden_norms_heatmap")[0]
    assert "4:↵" in list(norms["x"]) and not raw_marks_in(norms["x"])
    assert not raw_marks_in(c.value for c in at.caption)
    assert not raw_marks_in(at.dataframe[0].value.columns)


def test_attention_page_and_its_bertviz_view_show_readable_tokens(tiny_models, byte_level_llama):
    at = open_page(query={"model": byte_level_llama})
    at.text_area(key="attention_free").set_value(TEXT).run()
    assert not at.exception and not at.error
    assert "`the` `·cat` `’` `s` `↵` `the` `·mat` `.`" in [m.value for m in at.markdown]
    html = iframe_html(at)
    params = json.JSONDecoder().raw_decode(html, html.index("const params = ") + len("const params = "))[0]
    assert params["attention"][0]["left_text"][:4] == ["the", " cat", "\u2019", "s"]
    assert not raw_marks_in(params["attention"][0]["left_text"])
    at.session_state["attention_tab"] = "Heatmap"  # only the open tab runs (issue 18)
    assert not raw_marks_in(decode(chart_traces(at.run(), "attention_heatmap")[0]["x"]))
