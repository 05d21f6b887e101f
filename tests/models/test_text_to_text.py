"""The text-to-text adapter and pipelines on a tiny scrambled T5: a generated run traces every produced token as
transformers computes it, teacher forcing two ways agrees, the pipelines equal transformers' (greedy), and bad
input gets clear errors (empty source, a source cut to the limit with a warning, translation asked of BERT)."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import InputError, load_model, pipeline
from models.deferred_patterns import DEFERRED
from tests.models.test_family_t5 import SOURCES, TARGETS, _reference, compare
from tests.models.tiny_seq2seq import hf_tokenizer, make_t5
from tests.tiny_models import make_checkpoint

V11 = dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5-text")
    reference = make_t5(folder, seed=3, **V11)
    return reference, load_model(str(folder)), folder


def test_generated_run_traces_every_produced_token(pair):
    reference, model, _ = pair
    trace = model.run(SOURCES, max_new_tokens=12)
    new = model.generate(SOURCES, max_new_tokens=12)
    assert [row[1:n] for row, n in zip(trace.input_ids.tolist(), trace.lengths)] == new
    assert trace.tokens[0][0] == "<pad>" and trace.extras["target_tokens"] is trace.tokens
    assert trace.extras["source_tokens"][1] == ["who", "was", "it", "?", "</s>"]
    special = {0, 1}  # <pad> (also generated mid-way here) and </s>: skipped, as transformers' decode skips them
    assert trace.extras["outputs"] == [model.tokenizer.decode([i for i in ids if i not in special]) for ids in new]
    assert len(trace.decoder_attentions) == 2 and trace.attentions is trace.decoder_attentions
    compare(trace, _reference(reference, trace))


def test_deferred_patterns_equal_captured_ones(pair):
    _, model, _ = pair
    captured = model.run(SOURCES, targets=TARGETS)
    deferred = model.run(SOURCES, targets=TARGETS, capture=DEFERRED)
    for key in ("encoder_attentions", "decoder_attentions", "cross_attentions"):
        for a, b in zip(getattr(captured, key), getattr(deferred, key), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_targets_are_tokenised_as_text_target_and_equal_given_decoder_ids(pair):
    reference, model, folder = pair
    tokenizer = hf_tokenizer(folder)
    labels = tokenizer(text_target=TARGETS[0], return_tensors="pt").input_ids  # (1, n) ending in </s>
    by_text = model.run(SOURCES[0], targets=TARGETS[0])
    assert by_text.input_ids[0].tolist() == [0] + labels[0].tolist()
    by_ids = model.run(SOURCES[0], decoder_input_ids=by_text.input_ids)
    torch.testing.assert_close(by_ids.logits, by_text.logits)
    with torch.no_grad():  # transformers' loss input: decoder ids are the labels shifted right
        theirs = reference(**tokenizer(SOURCES[:1], return_tensors="pt", return_token_type_ids=False),
                           labels=labels).logits
    torch.testing.assert_close(by_text.logits[:, :-1], theirs, atol=1e-4, rtol=0)
    with pytest.raises(InputError, match="one target per source"):
        model.run(SOURCES, targets=TARGETS[:1])


@pytest.mark.parametrize("task, key", [("translation", "translation_text"), ("summarization", "summary_text"),
                                       ("text2text-generation", "generated_text")])
def test_pipelines_equal_transformers_greedy(pair, task, key):
    reference, model, folder = pair
    theirs = tf.pipeline(task, model=reference, tokenizer=hf_tokenizer(folder))
    ours = pipeline(task, model=model)
    one = ours(SOURCES[0], max_new_tokens=8)
    assert one == theirs(SOURCES[0], max_new_tokens=8, num_beams=1) and list(one[0]) == [key]
    assert one.trace.extras["outputs"] == [one[0][key]] and one.trace.cross_attentions
    several = ours(SOURCES, max_new_tokens=8)
    assert several == theirs(SOURCES, max_new_tokens=8, num_beams=1)
    assert all(r.trace is not None for r in several)
    with pytest.raises(InputError, match="num_beams=4"):
        ours(SOURCES[0], num_beams=4)


def test_a_loaded_folder_serves_the_pipelines_by_path(pair):
    _, _, folder = pair
    assert pipeline("translation", model=str(folder))("the cat sat", max_new_tokens=4)[0]["translation_text"] is not None


def test_empty_source_is_refused(pair):
    _, model, _ = pair
    for empty in ("", "   ", []):
        with pytest.raises(InputError):
            model.run(empty)


def test_a_long_source_is_cut_to_the_limit_keeping_the_end_token(tmp_path):
    reference = make_t5(tmp_path, seed=4, n_positions=10, **V11)
    model = load_model(str(tmp_path))
    text = "the cat sat on the mat . a dog barked loudly"
    trace = model.run(text, max_new_tokens=4)
    assert trace.warnings == ["The text has 12 tokens; truncated to the model's limit of 10 tokens."]
    expected = hf_tokenizer(tmp_path)(text, truncation=True, max_length=10).input_ids
    assert trace.extras["source_ids"][0].tolist() == expected and trace.extras["source_tokens"][0][-1] == "</s>"
    compare(trace, _reference(reference, trace))


def test_translation_asked_of_a_bert_model_says_what_it_can_do(tmp_path):
    make_checkpoint("bert-mlm", tmp_path)
    bert = load_model(str(tmp_path))
    with pytest.raises(InputError, match=rf"{bert.display_name}.*bert model that serves: fill-mask"):
        pipeline("translation", model=bert)


def test_a_text_to_text_task_of_an_encoder_folder_names_the_task(tmp_path):
    from models import InputError
    from models.pipelines import pipeline
    from tests.tiny_models import make_checkpoint
    make_checkpoint("bert", tmp_path)
    for task in ("translation", "summarization", "text2text-generation"):
        with pytest.raises(InputError, match=f"{task} needs a model with a seq2seq-lm head"):
            pipeline(task, str(tmp_path))


def test_generation_settings_greedy_decoding_leaves_out_are_named_in_the_trace():
    from models import load_model
    model = load_model("numbers-to-words")
    assert not model.run("47").warnings
    model.generation_config = {**model.generation_config, "num_beams": 4, "no_repeat_ngram_size": 3}
    warnings = model.run("47").warnings
    assert len(warnings) == 1 and "num_beams=4" in warnings[0] and "no_repeat_ngram_size=3" in warnings[0]
    assert not model.run("47", targets=["forty seven"]).warnings  # teacher forcing decodes nothing


def test_an_option_a_pipeline_does_not_implement_is_refused_by_name():
    from models import InputError
    from models.pipelines import pipeline
    with pytest.raises(InputError, match="does not implement 'do_sample'"):
        pipeline("translation")("47", do_sample=True)
    with pytest.raises(InputError, match="does not implement 'temperature'"):
        pipeline("text-classification")("good film", temperature=0.5)


def test_bytes_and_broken_unicode_sources_are_named():
    from models import InputError, load_model
    model = load_model("numbers-to-words")
    with pytest.raises(InputError, match="bytes"):
        model.run(b"4071")
    with pytest.raises(InputError, match="bytes"):
        model.run(["12", b"4071"])
    with pytest.raises(InputError):
        model.run("40\ud80071")  # a lone surrogate
    with pytest.raises(InputError):
        model.run([12])
