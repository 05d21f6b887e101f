"""BART and mBART against transformers (eager) on tiny scrambled checkpoints: teacher-forced states, every
attention and the logits (single and padded), head masks on each stack, pruned = masked, save and reload both
ways; config keys refused by name. Checks are in tests/models/seq2seq_parity.py."""
from __future__ import annotations

import pytest
import transformers as tf

from models import load_model
from tests.models.config_keys import assert_refused
from tests.models.seq2seq_parity import (check_added_tokens, check_generation_settings_in_config_json,
                                         check_greedy_generation, check_head_masks, check_pipelines,
                                         check_pruned_equals_masked, check_save_round_trip, check_teacher_forced,
                                         check_trace, make_seq2seq_checkpoint)

SPECIAL = ["<s>", "<pad>", "</s>"]
SPECIAL_MAP = {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "[UNK]"}
IDS = dict(bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2)
KINDS = {
    # BART: post-norm, scaled embeddings, gelu
    "bart": (tf.BartConfig, tf.BartForConditionalGeneration, dict(scale_embedding=True)),

    # mBART: pre-norm with a final norm per stack; an other activation; the first new token forced (a language id)
    "mbart": (tf.MBartConfig, tf.MBartForConditionalGeneration,
              dict(scale_embedding=False, activation_function="relu", forced_bos_token_id=5)),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def pair(request, tmp_path_factory):
    config_class, model_class, extra = KINDS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    reference = make_seq2seq_checkpoint(config_class, model_class, folder, SPECIAL, "<s> $A </s>",
                                        "<s> $A </s> </s> $B </s>", SPECIAL_MAP, **IDS, **extra)
    return reference, load_model(str(folder))


def test_loads_as_an_encoder_decoder(pair):
    _, model = pair
    assert model.is_encoder_decoder and model.task == "seq2seq-lm" and model.can_generate
    assert model.stacks == ("decoder", "encoder", "cross")
    # one token table for both stacks and the tied unembedding, as transformers' `model.shared`
    network = model.network
    assert network.encoder.embed.word.weight is network.decoder.embed.word.weight is network.head.decoder.weight


def test_teacher_forced_outputs_match_transformers(pair):
    check_teacher_forced(*pair)


def test_trace_of_given_targets_matches_transformers(pair):
    check_trace(*pair)


def test_greedy_generation_equals_transformers_generate(pair):
    check_greedy_generation(*pair)


def test_generation_settings_in_config_json_are_used_as_transformers_uses_them(pair, tmp_path):
    check_generation_settings_in_config_json(*pair, tmp_path)


def test_pipelines_equal_transformers_pipelines(pair):
    check_pipelines(pair[1], ("summarization", "translation"))


def test_head_masks_on_each_stack_match_transformers(pair):
    check_head_masks(*pair)


def test_pruned_equals_masked_in_every_stack(pair, tmp_path):
    check_pruned_equals_masked(pair[1], tmp_path)


def test_saved_folder_round_trips_and_loads_in_transformers(pair, tmp_path):
    check_save_round_trip(*pair, tmp_path)


def test_added_tokens_grow_the_shared_table_and_the_logits_bias(pair, tmp_path):
    check_added_tokens(pair[1], tmp_path)


@pytest.mark.parametrize("kind, key, value", [
    ("bart", "activation_function", "mish"), ("mbart", "activation_function", "mish"),
    ("bart", "is_encoder_decoder", False),
])
def test_a_refused_value_names_its_key(kind, key, value):
    from models.families import FAMILIES
    hf = tf.AutoConfig.for_model(kind).to_dict()
    hf[key] = value
    assert_refused(FAMILIES[kind].config_from_hf, hf, key)
