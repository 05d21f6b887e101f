"""`pipeline(task, model)` gives what transformers' pipelines give on the same tiny model and input, plus a trace."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from models import InputError, pipeline
from tests.tiny_modal_models import make_vit, make_wav2vec2, noise_clip
from tests.tiny_models import make_checkpoint, save_tokenizer, word_tokenizer

TEXT = "the cat sat on the mat ."


def _theirs(task, folder, **kwargs):
    import transformers as tf
    return tf.pipeline(task, model=str(folder), device="cpu", **kwargs)


def _close_labels(ours, theirs):
    assert [r["label"] for r in ours] == [r["label"] for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)


def _bert_head(folder, cls_name, **config):
    """A tiny BERT with a task head, saved with the tests' word tokenizer."""
    import transformers as tf
    torch.manual_seed(0)
    special = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    tok = word_tokenizer(special, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")
    cfg = tf.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, pad_token_id=0, **config)
    model = getattr(tf, cls_name)(cfg).eval()
    model.save_pretrained(folder)
    save_tokenizer(tok, folder, {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                                 "mask_token": "[MASK]", "unk_token": "[UNK]"})
    return model


def test_fill_mask_matches_transformers(tmp_path):
    # MiniLM ships without a masked-LM head and no package here carries one: a tiny random BERT-MLM stands in
    make_checkpoint("bert-mlm", tmp_path)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    tok.add_special_tokens(["[MASK]"])  # as in real BERT tokenizer files, so "[MASK]" is one token
    tok.save(str(tmp_path / "tokenizer.json"))
    ours = pipeline("fill-mask", str(tmp_path))("the cat [MASK] on the mat .")
    theirs = _theirs("fill-mask", tmp_path)("the cat [MASK] on the mat .")
    assert [r["token"] for r in ours] == [r["token"] for r in theirs] and len(ours) == 5
    np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-5)
    assert ours.trace.logits.shape[-1] == 64 and set(ours[0]) == {"score", "token", "token_str", "sequence"}


def test_fill_mask_without_a_mask_head_says_so(tmp_path):
    make_checkpoint("bert", tmp_path)
    with pytest.raises(InputError, match="masked-language-model head"):
        pipeline("fill-mask", __import__("models").load_model(str(tmp_path)))


def test_text_classification_matches_transformers(tmp_path):
    make_checkpoint("bert-cls", tmp_path)
    ours, theirs = pipeline("text-classification", str(tmp_path)), _theirs("text-classification", tmp_path)
    one = ours(TEXT)
    _close_labels(one, theirs(TEXT))
    assert one.trace.attentions[0].shape[1] == 4 and one.seconds > 0
    batch = ours([TEXT, "i love this film"])
    assert isinstance(batch[0], dict) and batch[0].trace is not None
    _close_labels(batch, theirs([TEXT, "i love this film"]))
    _close_labels(ours(TEXT, top_k=None), theirs(TEXT, top_k=None))


def test_token_classification_matches_transformers(tmp_path):
    _bert_head(tmp_path, "BertForTokenClassification", num_labels=3,
               id2label={0: "O", 1: "B-ANIMAL", 2: "I-ANIMAL"}, label2id={"O": 0, "B-ANIMAL": 1, "I-ANIMAL": 2})
    ours = pipeline("token-classification", str(tmp_path))(TEXT)
    theirs = _theirs("token-classification", tmp_path)(TEXT)
    assert [(r["entity"], r["index"], r["word"], r["start"], r["end"]) for r in ours] == \
        [(r["entity"], r["index"], r["word"], r["start"], r["end"]) for r in theirs]
    np.testing.assert_allclose([r["score"] for r in ours], [float(r["score"]) for r in theirs], atol=1e-5)


def test_question_answering_matches_transformers(tmp_path):
    _bert_head(tmp_path, "BertForQuestionAnswering")
    ours = pipeline("question-answering", str(tmp_path))(question="who sat ?", context="the cat sat on the mat .")
    theirs = _theirs("question-answering", tmp_path)(question="who sat ?", context="the cat sat on the mat .")
    assert (ours["start"], ours["end"], ours["answer"]) == (theirs["start"], theirs["end"], theirs["answer"])
    assert ours["score"] == pytest.approx(theirs["score"], abs=1e-5)
    assert ours.trace.token_type_ids[0].max() == 1  # the context is the second segment


def test_text_generation_matches_transformers_greedy(tmp_path):
    make_checkpoint("gpt2", tmp_path)
    ours = pipeline("text-generation", str(tmp_path))("the cat", max_new_tokens=6)
    theirs = _theirs("text-generation", tmp_path)("the cat", max_new_tokens=6, do_sample=False)
    assert ours == theirs
    assert ours.trace.input_ids.shape[1] >= 2


def test_image_classification_matches_transformers(tmp_path):
    make_vit(tmp_path, "vit-cls")
    image = Image.fromarray(np.random.default_rng(1).integers(0, 255, (30, 20, 3), dtype=np.uint8))
    ours = pipeline("image-classification", str(tmp_path))(image)
    _close_labels(ours, _theirs("image-classification", tmp_path)(image))
    assert len(ours) == 3 and ours.trace.modality == "image"


def test_ctc_speech_recognition_matches_transformers(tmp_path):
    make_wav2vec2(tmp_path, "ctc")
    clip = noise_clip(0.6, seed=3)
    ours = pipeline("automatic-speech-recognition", str(tmp_path))(clip)
    theirs = _theirs("automatic-speech-recognition", tmp_path)(clip)
    assert ours == theirs and ours.trace.logits.shape[-1] == 12


def test_audio_classification_matches_transformers(tmp_path):
    make_wav2vec2(tmp_path, "cls")
    clip = noise_clip(0.6, seed=4)
    ours = pipeline("audio-classification", str(tmp_path))({"raw": clip, "sampling_rate": 16000})
    theirs = _theirs("audio-classification", tmp_path)({"raw": clip, "sampling_rate": 16000})
    _close_labels(ours, theirs)


def test_wrong_model_for_a_task_is_refused(tmp_path):
    make_vit(tmp_path, "vit-cls")
    with pytest.raises(InputError, match="needs a text model"):
        pipeline("text-classification", str(tmp_path))
    with pytest.raises(InputError, match="Unknown task"):
        pipeline("table-question-answering", str(tmp_path))  # summarization is a task now (text-to-text)
