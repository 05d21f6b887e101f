"""Parity checks every native text encoder-decoder family (BART, mBART, Marian) passes against transformers (eager).

A family's test makes a tiny scrambled checkpoint with `make_seq2seq_checkpoint` and calls the checks here on
the network's teacher-forced forward (`model.forward(input_ids=..., decoder_input_ids=...)`), each within ATOL:
  - encoder states and self-attentions, decoder states, self- and cross-attentions and logits, on one pair and
    on a padded batch (padding in the source and in the target);
  - head masks on each stack equal transformers' head_mask / decoder_head_mask / cross_attn_head_mask;
  - a pruned model equals the masked one in every stack, and keeps its pruning through save and load;
  - save_pretrained -> load_model gives identical outputs, and transformers loads the saved folder (no missing
    weights) with equal outputs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models import load_model
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
VOCAB = 64
SOURCES = ["the cat sat on the mat .", "a dog barked loudly and then ran away quickly ."]
TARGETS = ["a dog sat .", "the cat ran away and then sat on the mat"]
# odd shapes: an MLP width that divides nothing, more positions than any input
TINY = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=40)


def make_seq2seq_checkpoint(config_class: Any, model_class: Any, folder: Path, special: list[str], template: str,
                            pair_template: str, special_map: dict[str, str], seed: int = 0,
                            fixed: tuple[str, ...] = (), **config: Any):
    """A tiny random transformers encoder-decoder, every parameter and `final_logits_bias` scrambled (but those
    named in `fixed`, such as Marian's sinusoidal table), saved to `folder` with a word-level tokenizer."""
    torch.manual_seed(seed)
    cfg = config_class(**{**TINY, **config})
    cfg._attn_implementation = "eager"
    model = model_class(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not any(f in name for f in fixed):
                p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name.lower() else 0.0))
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.copy_(torch.randn_like(model.final_logits_bias))
    model.save_pretrained(folder)
    save_tokenizer(full_vocabulary_tokenizer(special, template, pair_template, cfg.vocab_size), folder, special_map)
    return model


def full_vocabulary_tokenizer(special: list[str], template: str, pair_template: str, size: int):
    """The tests' word-level tokenizer grown with made-up words to the model's vocabulary (a random model generates
    any id, and each must decode to a word), its special tokens marked special so decoding skips them."""
    tokenizer = word_tokenizer(special, template, pair_template)
    tokenizer.add_tokens([f"w{i}" for i in range(tokenizer.get_vocab_size(), size)])
    tokenizer.add_special_tokens(special)
    return tokenizer


def teacher_forced_inputs(model, sources: list[str], targets: list[str]) -> dict[str, torch.Tensor]:
    """Right-padded source ids and decoder ids [decoder start] + target + [end], with their masks."""
    enc = model.encode(sources)
    start, end = model.config.bos_token_id, model.config.eos_token_id
    pad = model.config.pad_token_id
    rows = [[start] + model.tokenizer.backend.encode(t, add_special_tokens=False).ids + [end] for t in targets]
    T = max(len(r) for r in rows)
    dec = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
    dec_mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
    return {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "decoder_input_ids": dec,
            "decoder_attention_mask": dec_mask}


def reference_outputs(reference, inputs: dict[str, torch.Tensor], **kwargs: Any):
    with torch.no_grad():
        return reference(**inputs, output_attentions=True, output_hidden_states=True, **kwargs)


def our_outputs(model, inputs: dict[str, torch.Tensor]):
    with torch.no_grad():
        return model.forward(**inputs)


def _hidden(out) -> list[torch.Tensor]:
    """transformers' convention: embeddings, each block, and the last one after the final norm (mBART)."""
    states = list(out.resid)
    states[-1] = out.final
    return states


def assert_same_outputs(ours, theirs, inputs: dict[str, torch.Tensor], atol: float = ATOL) -> None:
    src, tgt = inputs["attention_mask"].bool(), inputs["decoder_attention_mask"].bool()
    enc, dec = ours.encoder, ours.decoder
    for a, b in zip(_hidden(enc), theirs.encoder_hidden_states, strict=True):
        torch.testing.assert_close(a[src], b[src], atol=atol, rtol=0)
    for a, b in zip(enc.attentions, theirs.encoder_attentions, strict=True):
        real = src[:, None, :, None] & src[:, None, None, :]
        torch.testing.assert_close(a * real, b * real, atol=atol, rtol=0)
    for a, b in zip(_hidden(dec), theirs.decoder_hidden_states, strict=True):
        torch.testing.assert_close(a[tgt], b[tgt], atol=atol, rtol=0)
    for a, b in zip(dec.attentions, theirs.decoder_attentions, strict=True):
        real = tgt[:, None, :, None] & tgt[:, None, None, :]
        torch.testing.assert_close(a * real, b * real, atol=atol, rtol=0)
    for a, b in zip(dec.cross_attentions, theirs.cross_attentions, strict=True):
        real = tgt[:, None, :, None] & src[:, None, None, :]
        torch.testing.assert_close(a * real, b * real, atol=atol, rtol=0)
    torch.testing.assert_close(dec.logits[tgt], theirs.logits[tgt], atol=atol, rtol=0)


def check_teacher_forced(reference, model) -> None:
    """One pair alone, then the padded batch."""
    single = teacher_forced_inputs(model, SOURCES[:1], TARGETS[:1])
    assert bool(single["attention_mask"].all())
    assert_same_outputs(our_outputs(model, single), reference_outputs(reference, single), single)
    batch = teacher_forced_inputs(model, SOURCES, TARGETS)
    assert not bool(batch["attention_mask"].all()) and not bool(batch["decoder_attention_mask"].all())
    assert_same_outputs(our_outputs(model, batch), reference_outputs(reference, batch), batch)


def check_head_masks(reference, model) -> None:
    """A mask on each stack at once equals transformers' three head masks; nothing stays after the context."""
    batch = teacher_forced_inputs(model, SOURCES, TARGETS)
    spec = {"encoder": {0: [1]}, "decoder": {1: [0, 3]}, "cross": {0: [2]}}
    with model.mask_heads(spec):
        masked = our_outputs(model, batch)
    head_mask, decoder_mask, cross_mask = torch.ones(2, 4), torch.ones(2, 4), torch.ones(2, 4)
    head_mask[0, 1] = 0
    decoder_mask[1, [0, 3]] = 0
    cross_mask[0, 2] = 0
    theirs = reference_outputs(reference, batch, head_mask=head_mask, decoder_head_mask=decoder_mask,
                               cross_attn_head_mask=cross_mask)
    assert_same_outputs(masked, theirs, batch)
    assert not torch.allclose(our_outputs(model, batch).decoder.logits, masked.decoder.logits)


def check_pruned_equals_masked(model, tmp_path: Path) -> None:
    batch = teacher_forced_inputs(model, SOURCES, TARGETS)
    spec = {"encoder.1": [0, 1], 0: [2], "cross.1": [3]}
    with model.mask_heads(spec):
        masked = our_outputs(model, batch)
    pruned = model.prune_heads(spec)
    assert pruned.stack_head_ids() == {"decoder": [[0, 1, 3], [0, 1, 2, 3]], "encoder": [[0, 1, 2, 3], [2, 3]],
                                       "cross": [[0, 1, 2, 3], [0, 1, 2]]}
    assert model.stack_head_ids()["encoder"] == [[0, 1, 2, 3], [0, 1, 2, 3]]  # the original is untouched
    ours = our_outputs(pruned, batch)
    tgt = batch["decoder_attention_mask"].bool()
    torch.testing.assert_close(ours.decoder.logits[tgt], masked.decoder.logits[tgt], atol=1e-5, rtol=1e-5)
    src = batch["attention_mask"].bool()
    torch.testing.assert_close(ours.encoder.final[src], masked.encoder.final[src], atol=1e-5, rtol=1e-5)
    pruned.save_pretrained(tmp_path / "pruned")
    again = load_model(str(tmp_path / "pruned"))
    assert again.config.pruned_heads == pruned.config.pruned_heads
    torch.testing.assert_close(our_outputs(again, batch).decoder.logits, ours.decoder.logits, atol=0, rtol=0)


def check_save_round_trip(reference, model, tmp_path: Path) -> None:
    """Ours reloads bit for bit; transformers loads our folder with every weight and computes the same."""
    batch = teacher_forced_inputs(model, SOURCES, TARGETS)
    before = our_outputs(model, batch)
    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    again = our_outputs(load_model(str(saved)), batch)
    for a, b in zip(_hidden(again.decoder) + _hidden(again.encoder), _hidden(before.decoder) + _hidden(before.encoder)):
        assert torch.equal(a, b)
    reloaded, info = type(reference).from_pretrained(saved, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"] and not info["unexpected_keys"], info
    assert_same_outputs(before, reference_outputs(reloaded.eval(), batch), batch)


# ---------------------------------------------------------------------------- through the text-to-text adapter

def check_trace(reference, model) -> None:
    """`run(sources, targets=...)` teacher-forces [start] + the target as the tokenizer ends it; the trace holds
    what transformers computes on those decoder ids."""
    trace = model.run(SOURCES, targets=TARGETS)
    assert trace.input_ids[:, 0].tolist() == [model.config.bos_token_id] * 2
    inputs = {"input_ids": trace.extras["source_ids"], "attention_mask": trace.extras["source_attention_mask"],
              "decoder_input_ids": trace.input_ids, "decoder_attention_mask": trace.attention_mask}
    theirs = reference_outputs(reference, inputs)
    src, tgt = inputs["attention_mask"].bool(), inputs["decoder_attention_mask"].bool()
    for a, b in zip(trace.extras["encoder_hidden_states"], theirs.encoder_hidden_states, strict=True):
        torch.testing.assert_close(a[src], b[src], atol=ATOL, rtol=0)
    for a, b in zip(trace.hidden_states, theirs.decoder_hidden_states, strict=True):
        torch.testing.assert_close(a[tgt], b[tgt], atol=ATOL, rtol=0)
    for a, b in zip(trace.cross_attentions, theirs.cross_attentions, strict=True):
        real = tgt[:, None, :, None] & src[:, None, None, :]
        torch.testing.assert_close(a * real, b * real, atol=ATOL, rtol=0)
    for a, b in zip(trace.encoder_attentions, theirs.encoder_attentions, strict=True):
        real = src[:, None, :, None] & src[:, None, None, :]
        torch.testing.assert_close(a * real, b * real, atol=ATOL, rtol=0)
    torch.testing.assert_close(trace.logits[tgt], theirs.logits[tgt], atol=ATOL, rtol=0)


def check_greedy_generation(reference, model, max_new_tokens: int = 20) -> None:
    """20 greedy tokens equal transformers' generate with the checkpoint's generation config (its decoder start,
    forced BOS and EOS), for each source alone and for the padded batch."""
    enc = model.encode(SOURCES)
    with torch.no_grad():
        theirs = reference.generate(enc.input_ids, attention_mask=enc.attention_mask, max_new_tokens=max_new_tokens,
                                    do_sample=False, num_beams=1)
    expected = []
    for row in theirs[:, 1:].tolist():  # without the decoder start token; cut after the end token (then padding)
        end = model.config.eos_token_id
        expected.append(row[: row.index(end) + 1] if end in row else row)
    assert model.generate(SOURCES, max_new_tokens=max_new_tokens) == expected
    assert model.generate(SOURCES[1], max_new_tokens=max_new_tokens) == expected[1:]
    assert max(len(e) for e in expected) > 1  # more than the end token alone


def check_pipelines(model, tasks: tuple[str, ...]) -> None:
    """Our translation / summarization pipelines give transformers' pipelines' texts on the same folder."""
    import transformers as tf

    from models import pipeline
    for task in tasks:
        key = {"translation": "translation_text", "summarization": "summary_text"}[task]
        ours = pipeline(task, model)
        theirs = tf.pipeline(task, model=model.source, device="cpu")
        for text in SOURCES:
            got = ours(text, max_new_tokens=12)
            assert got == theirs(text, max_new_tokens=12, do_sample=False, num_beams=1), (task, text)
            assert got[0][key] and got.trace.cross_attentions[0].shape[-1] == got.trace.extras["source_ids"].shape[1]


def check_added_tokens(model, tmp_path: Path) -> None:
    """A grown vocabulary grows the shared table, the unembedding and final_logits_bias (new tokens 0, as
    transformers' resize_token_embeddings); the old tokens' logits are unchanged and transformers loads the save."""
    import transformers as tf
    grown = model.add_tokens(["zebra"])
    assert grown.config.vocab_size == model.config.vocab_size + 1
    assert float(grown.network.head.final_logits_bias[0, -1]) == 0.0
    batch = teacher_forced_inputs(model, SOURCES, TARGETS)
    before, after = our_outputs(model, batch).decoder.logits, our_outputs(grown, batch).decoder.logits
    torch.testing.assert_close(after[..., :-1], before, atol=1e-5, rtol=0)
    grown.save_pretrained(tmp_path / "grown")
    reloaded, info = tf.AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "grown", attn_implementation="eager",
                                                              output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    zebra = teacher_forced_inputs(grown, ["the zebra sat ."], ["a zebra"])
    assert grown.tokenizer.token_to_id("zebra") in zebra["input_ids"][0].tolist()
    assert_same_outputs(our_outputs(grown, zebra), reference_outputs(reloaded.eval(), zebra), zebra)


def check_generation_settings_in_config_json(reference, model, tmp_path: Path) -> None:
    """A folder without generation_config.json generates with config.json's decoder start and forced tokens, as
    transformers' generate does."""
    import json
    import shutil
    folder = tmp_path / "no_generation_config"
    shutil.copytree(model.source, folder)
    hf = json.loads((folder / "config.json").read_text())
    generation = json.loads((folder / "generation_config.json").read_text())
    (folder / "generation_config.json").unlink()
    hf.update({k: v for k, v in generation.items() if k.startswith(("forced_", "decoder_start"))})
    (folder / "config.json").write_text(json.dumps(hf))
    again = load_model(str(folder))
    assert again.generation_config.get("forced_eos_token_id") == generation["forced_eos_token_id"]
    check_greedy_generation(type(reference).from_pretrained(folder, attn_implementation="eager").eval(), again)
