"""save_pretrained's README.md model card: Hugging Face metadata that parses, a body that lists exactly what
was changed here, and a card the source shipped with kept rather than overwritten."""
from __future__ import annotations

import pytest
import yaml

import models
from models.model_card import PROJECT_TAG
from tests.tiny_models import make_checkpoint

SOURCE_CARD = "---\nlicense: mit\ntags:\n- toy\n---\n# The original\n\nTrained on nothing at all.\n"


def card(folder) -> tuple[dict, str]:
    text = (folder / "README.md").read_text()
    assert text.startswith("---\n")
    _, front, body = text.split("---\n", 2)
    return yaml.safe_load(front), body


def bullet(body: str, name: str) -> str:
    return next(line for line in body.splitlines() if line.startswith(f"- **{name}:**")).split(":** ", 1)[1]


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-bert")
    make_checkpoint("bert", folder)
    return folder


def test_front_matter_names_the_base_model_and_the_pipeline_tag(bert_folder, tmp_path):
    # loaded under the embedded name, so the card names that model's hub source
    model = models.load_folder(bert_folder, name="minilm").with_head("sequence-classification", labels=["a", "b"])
    model.save_pretrained(tmp_path / "out")
    meta, body = card(tmp_path / "out")
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["pipeline_tag"] == "text-classification" and meta["library_name"] == "transformers"
    assert PROJECT_TAG in meta["tags"] and "bert" in meta["tags"] and "pruned" not in meta["tags"]
    assert bullet(body, "Heads pruned") == "none" and bullet(body, "Tokens added") == "none"


def test_a_hub_id_is_the_base_model_and_a_bare_body_extracts_features(bert_folder, tmp_path):
    models.load_folder(bert_folder, name="someone/tiny-bert").save_pretrained(tmp_path / "hub")
    meta, body = card(tmp_path / "hub")
    assert meta["base_model"] == "someone/tiny-bert" and meta["pipeline_tag"] == "feature-extraction"
    assert bullet(body, "Task head") == "none (the bare body)"
    # a local folder's name is no hub id: no base_model claim in the metadata
    models.load_folder(bert_folder).save_pretrained(tmp_path / "local")
    assert "base_model" not in card(tmp_path / "local")[0]


def test_a_causal_lm_is_text_generation(tmp_path):
    make_checkpoint("llama", tmp_path / "llama")
    models.load_folder(tmp_path / "llama", name="smollm2").save_pretrained(tmp_path / "out")
    meta, _ = card(tmp_path / "out")
    assert meta["pipeline_tag"] == "text-generation" and meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_pruned_grown_new_head_card_lists_exactly_those(bert_folder, tmp_path):
    model = (models.load_folder(bert_folder, name="minilm")
             .add_tokens(["COVID-19", "zzyzx"]).add_tokens(["qwerty"])       # two change records
             .prune_heads({0: [3, 1], 1: [0]})
             .with_head("token-classification", labels=["O", "B-PER", "I-PER"]))
    model.save_pretrained(tmp_path / "out", card_metrics={"held-out accuracy": 0.8125, "held-out examples": 16})
    meta, body = card(tmp_path / "out")
    assert meta["pipeline_tag"] == "token-classification" and {"pruned", "added-tokens"} <= set(meta["tags"])
    assert bullet(body, "Heads pruned") == "encoder: L0.H1, L0.H3, L1.H0"
    ids = model.tokenizer.backend.get_vocab()
    assert bullet(body, "Tokens added") == (f"`COVID-19` (id {ids['COVID-19']}), `zzyzx` (id {ids['zzyzx']}), "
                                            f"`qwerty` (id {ids['qwerty']})")
    assert bullet(body, "Task head") == "token-classification; labels O, B-PER, I-PER; untrained (initialised, not trained)"
    assert "| held-out accuracy | 0.8125 |" in body and "| held-out examples | 16 |" in body


def test_a_source_card_is_kept_as_it_is_when_nothing_changed(bert_folder, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for path in bert_folder.iterdir():
        (source / path.name).write_bytes(path.read_bytes())
    (source / "README.md").write_text(SOURCE_CARD)
    model = models.load_folder(source, name="minilm")
    model.save_pretrained(tmp_path / "same")
    assert (tmp_path / "same" / "README.md").read_text() == SOURCE_CARD
    # changed: what changed comes first, then the source card's text in full (its metadata merged, not repeated)
    model.prune_heads({1: [2]}).save_pretrained(tmp_path / "pruned")
    meta, body = card(tmp_path / "pruned")
    assert meta["license"] == "mit" and meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert bullet(body, "Heads pruned") == "encoder: L1.H2"
    changes, original = body.split("## The source model's card")
    assert "## What changed in Transformer Workbench" in changes
    assert original.strip() == "# The original\n\nTrained on nothing at all."
    assert "license:" not in body  # the source's front matter is merged into the new one, not left in the body


def test_saving_into_the_source_folder_still_records_the_change(bert_folder, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for path in bert_folder.iterdir():
        (source / path.name).write_bytes(path.read_bytes())
    models.load_folder(source).prune_heads({0: [0]}).save_pretrained(source)
    _, body = card(source)
    assert bullet(body, "Heads pruned") == "encoder: L0.H0"


def test_the_embedded_translators_card_survives_a_save_and_a_pruning(tmp_path):
    translator = models.load_model("numbers-to-words")
    shipped = (models.embedded.EMBEDDED["numbers-to-words"]() / "README.md").read_text()
    translator.save_pretrained(tmp_path / "same")
    assert (tmp_path / "same" / "README.md").read_text() == shipped
    translator.prune_heads({("decoder", 0): [1]}).save_pretrained(tmp_path / "pruned")
    meta, body = card(tmp_path / "pruned")
    assert meta["pipeline_tag"] == "text2text-generation" and meta["license"] == "apache-2.0"
    assert bullet(body, "Heads pruned") == "decoder: L0.H1"
    shipped_body = shipped.split("---\n", 2)[2].strip()
    assert body.split("## The source model's card", 1)[1].strip() == shipped_body
