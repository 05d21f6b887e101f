"""Marian against transformers (eager) on tiny scrambled checkpoints, with shared and with separate token tables:
teacher-forced states, every attention and the logits (single and padded), head masks on each stack, pruned =
masked, save and reload both ways (the sinusoidal table is recomputed, as transformers does); config keys
refused by name. Checks are in tests/models/seq2seq_parity.py."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import InputError, load_model
from models.families import FAMILIES
from models.families.marian import marian_sinusoids
from tests.models.config_keys import assert_refused
from tests.models.seq2seq_parity import (check_added_tokens, check_generation_settings_in_config_json,
                                         check_greedy_generation, check_head_masks, check_pipelines,
                                         check_pruned_equals_masked, check_save_round_trip, check_teacher_forced,
                                         check_trace, make_seq2seq_checkpoint)

SPECIAL = ["</s>", "<unk>", "<pad>"]
SPECIAL_MAP = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "[UNK]"}
# Marian starts the decoder with the pad token and forces the end token at the length limit
IDS = dict(pad_token_id=2, eos_token_id=0, decoder_start_token_id=2, forced_eos_token_id=0)
KINDS = {
    "shared": dict(scale_embedding=True, activation_function="swish"),
    # separate tables, a smaller target vocabulary and an untied unembedding
    "separate": dict(scale_embedding=True, share_encoder_decoder_embeddings=False, decoder_vocab_size=50,
                     tie_word_embeddings=False),
}


@pytest.fixture(scope="module", params=sorted(KINDS))
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"marian-{request.param}")
    reference = make_seq2seq_checkpoint(tf.MarianConfig, tf.MarianMTModel, folder, SPECIAL, "$A </s>", "$A $B </s>",
                                        SPECIAL_MAP, fixed=("embed_positions",), **IDS, **KINDS[request.param])
    return reference, load_model(str(folder))


def test_loads_with_transformers_positions_and_tables(pair):
    reference, model = pair
    assert model.is_encoder_decoder and model.task == "seq2seq-lm"
    table = reference.model.encoder.embed_positions.weight
    assert torch.equal(marian_sinusoids(*table.shape), table)
    assert torch.equal(model.network.decoder.embed.position.weight, table)
    shared = reference.config.share_encoder_decoder_embeddings
    network = model.network
    assert (network.encoder.embed.word.weight is network.decoder.embed.word.weight) == shared
    assert model.config.vocab_size == reference.lm_head.out_features


def test_odd_widths_get_transformers_sinusoids():
    module = tf.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding(11, 7)
    module._init_weight()
    assert torch.equal(marian_sinusoids(11, 7), module.weight)


def test_teacher_forced_outputs_match_transformers(pair):
    check_teacher_forced(*pair)


def test_trace_of_given_targets_matches_transformers(pair):
    check_trace(*pair)


def test_greedy_generation_equals_transformers_generate(pair):
    check_greedy_generation(*pair)


def test_generation_settings_in_config_json_are_used_as_transformers_uses_them(pair, tmp_path):
    check_generation_settings_in_config_json(*pair, tmp_path)


def test_pipelines_equal_transformers_pipelines(pair):
    check_pipelines(pair[1], ("translation",))


def test_head_masks_on_each_stack_match_transformers(pair):
    check_head_masks(*pair)


def test_pruned_equals_masked_in_every_stack(pair, tmp_path):
    check_pruned_equals_masked(pair[1], tmp_path)


def test_saved_folder_round_trips_and_loads_in_transformers(pair, tmp_path):
    check_save_round_trip(*pair, tmp_path)


def test_added_tokens_grow_a_shared_table_and_are_refused_for_separate_ones(pair, tmp_path):
    reference, model = pair
    if reference.config.share_encoder_decoder_embeddings:
        check_added_tokens(model, tmp_path)
    else:
        with pytest.raises(InputError, match="separate source and target token tables"):
            model.add_tokens(["zebra"])


@pytest.mark.parametrize("key, value, extra", [
    ("activation_function", "mish", {}),
    ("tie_encoder_decoder", True, {}),
    ("decoder_vocab_size", 50, {"share_encoder_decoder_embeddings": False, "tie_word_embeddings": True}),
])
def test_a_refused_value_names_its_key(key, value, extra):
    hf = {**tf.MarianConfig().to_dict(), **extra, key: value}
    assert_refused(FAMILIES["marian"].config_from_hf, hf, key)
