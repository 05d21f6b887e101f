"""Whisper parity with transformers (eager attention) on a tiny random checkpoint: encoder, decoder, cross-attention,
head masks on all three, pruning, greedy generation, and the saved folder loading back in transformers."""
from __future__ import annotations

import pytest
import torch

from models import HeadIndexError, InputError, load_model
from tests.tiny_modal_models import make_whisper, noise_clip

ATOL = 1e-5


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whisper")
    return make_whisper(folder), load_model(str(folder)), folder


def _waves():
    return [noise_clip(2.0, seed=0), noise_clip(1.0, seed=1)]


def _reference(reference, trace, **kwargs):
    with torch.no_grad():
        return reference(input_features=trace.extras["input_features"], decoder_input_ids=trace.input_ids,
                         decoder_attention_mask=trace.attention_mask, output_attentions=True,
                         output_hidden_states=True, **kwargs)


def _compare(trace, theirs):
    real = trace.attention_mask.bool()
    for a, b in zip(trace.extras["encoder_hidden_states"], theirs.encoder_hidden_states, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    for a, b in zip(trace.encoder_attentions, theirs.encoder_attentions, strict=True):
        torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    for a, b in zip(trace.hidden_states, theirs.decoder_hidden_states, strict=True):
        torch.testing.assert_close(a[real], b[real], atol=ATOL, rtol=0)
    for a, b in zip(trace.decoder_attentions, theirs.decoder_attentions, strict=True):
        keys = real[:, None, None, :].expand_as(a)
        queries = real[:, None, :, None].expand_as(a)
        torch.testing.assert_close(a * keys * queries, b * keys * queries, atol=ATOL, rtol=0)
    for a, b in zip(trace.cross_attentions, theirs.cross_attentions, strict=True):
        queries = real[:, None, :, None].expand_as(a)
        torch.testing.assert_close(a * queries, b * queries, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.logits[real], theirs.logits[real], atol=1e-4, rtol=0)


def test_trace_matches_transformers(pair):
    reference, model, _ = pair
    trace = model.run(audio=_waves(), sampling_rate=16000)
    assert trace.tokens[0][:2] == ["<|startoftranscript|>", "<|notimestamps|>"]
    assert trace.encoder_attentions[0].shape == (2, 4, 1500, 1500)
    assert trace.cross_attentions[0].shape[-1] == 1500 and trace.attentions is not None
    assert trace.extras["audio_positions"] == [100, 50]  # 2 s and 1 s at 20 ms per encoder position
    _compare(trace, _reference(reference, trace))


def test_given_transcript_is_scored(pair):
    reference, model, _ = pair
    trace = model.run(["the cat sat", "a dog"], audio=_waves(), sampling_rate=16000)
    assert trace.tokens[0] == ["<|startoftranscript|>", "<|notimestamps|>", "the", "cat", "sat", "<|endoftext|>"]
    assert trace.lengths == [6, 5]
    _compare(trace, _reference(reference, trace))


def test_greedy_generation_equals_a_greedy_loop_over_transformers(pair):
    """transformers' own generate() on this random checkpoint runs past max_new_tokens (long-form logic), so the
    reference is the plain greedy loop over its forward, with the checkpoint's suppressed tokens."""
    reference, model, _ = pair
    waves = [noise_clip(1.5, seed=10)]
    features = model.prepare(audio=waves).inputs["input_features"]
    g = reference.generation_config
    with torch.no_grad():
        encoder_outputs = reference.model.encoder(features)
        ids = [g.decoder_start_token_id, g.no_timestamps_token_id]
        for step in range(10):
            logits = reference(encoder_outputs=encoder_outputs, decoder_input_ids=torch.tensor([ids])).logits[0, -1]
            logits[g.suppress_tokens] = -float("inf")
            if step == 0:
                logits[g.begin_suppress_tokens] = -float("inf")
            ids.append(int(logits.argmax()))
            if ids[-1] == g.eos_token_id:
                break
    assert model.generate(waves, max_new_tokens=10)[0] == ids[2:]


def test_masks_on_each_stack_match_transformers_head_masks(pair):
    reference, model, _ = pair
    spec = {"encoder": {0: [1]}, "decoder": {1: [0, 3]}, "cross": {0: [2]}}
    with model.mask_heads(spec):
        trace = model.run(["the cat sat", "a dog"], audio=_waves(), sampling_rate=16000)
    head_mask, decoder_mask, cross_mask = torch.ones(2, 4), torch.ones(2, 4), torch.ones(2, 4)
    head_mask[0, 1] = 0
    decoder_mask[1, [0, 3]] = 0
    cross_mask[0, 2] = 0
    _compare(trace, _reference(reference, trace, head_mask=head_mask, decoder_head_mask=decoder_mask,
                               cross_attn_head_mask=cross_mask))
    unmasked = model.run(["the cat sat", "a dog"], audio=_waves(), sampling_rate=16000)
    assert not torch.allclose(unmasked.logits, trace.logits)  # nothing stays attached after the context


def test_pruned_equals_masked_and_round_trips(pair, tmp_path):
    _, model, _ = pair
    spec = {"encoder.1": [0, 1], 0: [2], "cross.1": [3]}
    with model.mask_heads(spec):
        masked = model.run(["the cat sat"], audio=_waves()[:1], sampling_rate=16000)
    pruned = model.prune_heads(spec)
    assert pruned.stack_head_ids()["encoder"] == [[0, 1, 2, 3], [2, 3]]
    assert model.stack_head_ids()["encoder"] == [[0, 1, 2, 3], [0, 1, 2, 3]]
    ours = pruned.run(["the cat sat"], audio=_waves()[:1], sampling_rate=16000)
    torch.testing.assert_close(ours.logits, masked.logits, atol=1e-4, rtol=0)
    pruned.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    assert again.config.pruned_heads == pruned.config.pruned_heads
    torch.testing.assert_close(again.run(["the cat sat"], audio=_waves()[:1], sampling_rate=16000).logits, ours.logits)


def test_saved_folder_loads_in_transformers(pair, tmp_path):
    import transformers as tf
    _, model, _ = pair
    model.save_pretrained(tmp_path)
    reloaded, info = tf.WhisperForConditionalGeneration.from_pretrained(
        tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    trace = model.run(["the cat sat", "a dog"], audio=_waves(), sampling_rate=16000)
    _compare(trace, _reference(reloaded.eval(), trace))


def test_bad_head_keys_and_long_audio_are_refused(pair):
    _, model, _ = pair
    with pytest.raises(HeadIndexError, match="encoder has layers 0..1"):
        with model.mask_heads({"encoder.5": [0]}):
            pass
    with pytest.raises(HeadIndexError, match="'encoder.N'"):
        model.prune_heads({"middle.0": [0]})
    with pytest.raises(InputError, match="limit is 30.0 s"):
        model.run(audio=[noise_clip(31.0)], sampling_rate=16000)
