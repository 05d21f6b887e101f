"""T5 parity with transformers (eager attention) on tiny scrambled checkpoints, v1.0 (relu MLP, tied head scaled by
d_model ** -0.5) and v1.1 (gated-gelu MLP, untied head): encoder and decoder states, all three kinds of attention,
logits, the relative position bias (also at cached decoding steps), greedy generation, head masks per stack, pruning,
saving, growing the shared vocabulary, mT5, and the config values refused by name."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES
from tests.models.config_keys import assert_refused
from tests.models.tiny_seq2seq import hf_tokenizer, make_t5

ATOL = 1e-4
LONG = "the cat sat on the mat . a dog barked loudly and then ran away quickly"  # 17 source tokens with </s>
SOURCES = [LONG, "who was it ?"]
TARGETS = ["a dog barked loudly and then ran away", "me"]
VERSIONS = {"v1.0": {}, "v1.1": dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)}


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def pair(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"t5-{request.param}")
    reference = make_t5(folder, seed=1, **VERSIONS[request.param])
    return reference, load_model(str(folder)), folder


def _reference(reference, trace, **kwargs):
    with torch.no_grad():
        return reference(input_ids=trace.extras["source_ids"], attention_mask=trace.extras["source_attention_mask"],
                         decoder_input_ids=trace.input_ids, decoder_attention_mask=trace.attention_mask,
                         output_attentions=True, output_hidden_states=True, **kwargs)


def compare(trace, theirs, atol: float = ATOL) -> None:
    """Every state and pattern of `trace` equals transformers' output `theirs` at real (unpadded) positions."""
    source = trace.extras["source_attention_mask"].bool()
    real = trace.attention_mask.bool()
    for a, b in zip(trace.extras["encoder_hidden_states"], theirs.encoder_hidden_states, strict=True):
        torch.testing.assert_close(a[source], b[source], atol=atol, rtol=0)
    for a, b in zip(trace.encoder_attentions, theirs.encoder_attentions, strict=True):
        keep = (source[:, None, :, None] & source[:, None, None, :]).expand_as(a)
        torch.testing.assert_close(a * keep, b * keep, atol=atol, rtol=0)
    for a, b in zip(trace.hidden_states, theirs.decoder_hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)
    for a, b in zip(trace.decoder_attentions, theirs.decoder_attentions, strict=True):
        keep = (real[:, None, :, None] & real[:, None, None, :]).expand_as(a)
        torch.testing.assert_close(a * keep, b * keep, atol=atol, rtol=0)
    for a, b in zip(trace.cross_attentions, theirs.cross_attentions, strict=True):
        keep = (real[:, None, :, None] & source[:, None, None, :]).expand_as(a)
        torch.testing.assert_close(a * keep, b * keep, atol=atol, rtol=0)
    torch.testing.assert_close(trace.logits[real], theirs.logits[real], atol=atol, rtol=0)


def test_teacher_forced_single_and_padded_batch_match_transformers(pair):
    reference, model, _ = pair
    assert model.task == "seq2seq-lm" and model.is_encoder_decoder and model.can_generate
    assert model.stacks == ("decoder", "encoder", "cross")
    single = model.run(LONG, targets=TARGETS[0])
    assert single.extras["source_tokens"][0][-1] == "</s>" and len(single.extras["source_tokens"][0]) == 17
    assert single.tokens[0][0] == "<pad>" and single.tokens[0][-1] == "</s>"  # decoder start, then the target
    assert single.encoder_attentions[0].shape == (1, 4, 17, 17) and single.cross_attentions[0].shape[-1] == 17
    compare(single, _reference(reference, single))
    batch = model.run(SOURCES, targets=TARGETS)
    assert batch.extras["source_attention_mask"].sum(1).tolist() == [17, 5] and batch.lengths == [10, 3]
    compare(batch, _reference(reference, batch))


def test_twenty_greedy_tokens_equal_transformers_generate(pair):
    reference, model, folder = pair
    tokenizer = hf_tokenizer(folder)
    for text in (LONG, "i love this film"):
        encoded = tokenizer([text], return_tensors="pt", return_token_type_ids=False)
        with torch.no_grad():
            theirs = reference.generate(**encoded, max_new_tokens=20, do_sample=False, num_beams=1)[0, 1:].tolist()
        assert model.generate(text, max_new_tokens=20)[0] == theirs


def test_generation_stops_at_the_end_token(pair):
    """An end token the model reaches early (a word it produces): both stop there, and the trace ends with it."""
    reference, model, folder = pair
    first = model.generate(LONG, max_new_tokens=20)[0]
    stop = first[2]
    model = load_model(str(folder))
    model.generation_config = {**model.generation_config, "eos_token_id": stop}
    encoded = hf_tokenizer(folder)([LONG], return_tensors="pt", return_token_type_ids=False)
    with torch.no_grad():
        theirs = reference.generate(**encoded, max_new_tokens=20, do_sample=False, eos_token_id=stop)[0, 1:].tolist()
    ours = model.generate(LONG, max_new_tokens=20)[0]
    assert ours == theirs and ours[-1] == stop and len(ours) == first.index(stop) + 1
    assert model.run(LONG, max_new_tokens=20).input_ids[0].tolist() == [0] + ours


def test_position_bias_in_the_trace_equals_transformers_also_while_decoding(pair):
    reference, model, _ = pair
    trace = model.run(SOURCES, targets=TARGETS)
    S, T = trace.extras["source_ids"].shape[1], trace.input_ids.shape[1]
    encoder_bias = reference.encoder.block[0].layer[0].SelfAttention
    decoder_bias = reference.decoder.block[0].layer[0].SelfAttention
    with torch.no_grad():
        torch.testing.assert_close(trace.extras["encoder_position_bias"], encoder_bias.compute_bias(S, S))
        torch.testing.assert_close(trace.extras["decoder_position_bias"], decoder_bias.compute_bias(T, T))
        assert trace.extras["position_bias"] is trace.extras["decoder_position_bias"]
        for past in (0, 5, 13, 30):  # a cached step: one query at position `past`, keys 0..past
            ours = model.network.decoder.position_bias(1, past + 1, past)
            theirs = decoder_bias.compute_bias(1, past + 1, cache_position=torch.tensor([past]))
            torch.testing.assert_close(ours, theirs)
    # 17 tokens with 8 buckets and max distance 16: every bucket of both directions is used
    assert model.network.encoder.position_bias.table.num_embeddings == 8


def test_head_masks_on_each_stack_match_transformers(pair):
    reference, model, _ = pair
    spec = {"encoder": {0: [1]}, "decoder": {1: [0, 3]}, "cross": {0: [2]}}
    with model.mask_heads(spec):
        trace = model.run(SOURCES, targets=TARGETS)
    head_mask, decoder_mask, cross_mask = torch.ones(2, 4), torch.ones(2, 4), torch.ones(2, 4)
    head_mask[0, 1] = 0
    decoder_mask[1, [0, 3]] = 0
    cross_mask[0, 2] = 0
    compare(trace, _reference(reference, trace, head_mask=head_mask, decoder_head_mask=decoder_mask,
                              cross_attn_head_mask=cross_mask))
    assert not torch.allclose(model.run(SOURCES, targets=TARGETS).logits, trace.logits)  # nothing stays attached


def test_pruned_equals_masked_and_round_trips(pair, tmp_path):
    _, model, _ = pair
    spec = {"encoder.0": [0, 2], "encoder.1": [3], 0: [1], "cross.1": [0, 3]}  # layer 0 holds the bias in transformers
    with model.mask_heads(spec):
        masked = model.run(SOURCES, targets=TARGETS)
    pruned = model.prune_heads(spec)
    assert pruned.stack_head_ids()["encoder"] == [[1, 3], [0, 1, 2]]
    ours = pruned.run(SOURCES, targets=TARGETS)
    real = ours.attention_mask.bool()
    torch.testing.assert_close(ours.logits[real], masked.logits[real], atol=ATOL, rtol=0)
    assert pruned.generate(LONG, max_new_tokens=8) == _masked_generate(model, spec)
    pruned.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.config.pruned_heads == pruned.config.pruned_heads
    torch.testing.assert_close(again.run(SOURCES, targets=TARGETS).logits, ours.logits)


def _masked_generate(model, spec):
    with model.mask_heads(spec):
        return model.generate(LONG, max_new_tokens=8)


def test_saved_folder_loads_in_transformers_with_equal_logits(pair, tmp_path):
    _, model, _ = pair
    model.save_pretrained(tmp_path)
    reloaded, info = tf.T5ForConditionalGeneration.from_pretrained(tmp_path, attn_implementation="eager",
                                                                   output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert reloaded.config.tie_word_embeddings == model.config.tie_word_embeddings
    trace = model.run(SOURCES, targets=TARGETS)
    compare(trace, _reference(reloaded.eval(), trace))
    again = load_model(str(tmp_path))
    torch.testing.assert_close(again.run(SOURCES, targets=TARGETS).logits, trace.logits)


def test_growing_the_vocabulary_grows_the_shared_embedding_once(pair):
    _, model, _ = pair
    grown = model.add_tokens(["zebra"] + [f"word{i}" for i in range(29)])  # ids 37..66: past the 64 rows
    net = grown.network
    assert net.encoder.embed is net.decoder.embed and net.encoder.embed.word.weight.shape[0] == 67
    assert net.decoder.head.decoder.weight.shape[0] == 67  # tied or not, the head follows
    if model.config.tie_word_embeddings:
        assert net.decoder.head.decoder.weight is net.decoder.embed.word.weight
    before, after = model.run(SOURCES, targets=TARGETS), grown.run(SOURCES, targets=TARGETS)
    known = model.tokenizer.vocab_size  # rows past the tokenizer's 37 ids were unused and now start as new tokens
    torch.testing.assert_close(after.logits[..., :known], before.logits[..., :known])  # old tokens: same numbers
    assert grown.run("a zebra sat", targets="the cat").extras["source_tokens"][0][1] == "zebra"


def test_mt5_is_the_same_code_path(tmp_path):
    reference = make_t5(tmp_path, seed=2, model_class=tf.MT5ForConditionalGeneration, config_class=tf.MT5Config,
                        feed_forward_proj="gated-gelu", tie_word_embeddings=False)
    model = load_model(str(tmp_path))
    assert model.family == "mt5" and model.task == "seq2seq-lm"
    compare(model.run(SOURCES, targets=TARGETS), _reference(reference, model.run(SOURCES, targets=TARGETS)))


@pytest.mark.parametrize("key, value", [("feed_forward_proj", "gated-mish"), ("feed_forward_proj", "gated-gelu-x"),
                                        ("is_encoder_decoder", False), ("architectures", ["T5EncoderModel"]),
                                        ("pruned_heads", {"0": [1]})])
def test_refused_values_name_their_key(key, value):
    hf = tf.T5Config().to_dict()
    hf[key] = value
    assert_refused(FAMILIES["t5"].config_from_hf, hf, key)
