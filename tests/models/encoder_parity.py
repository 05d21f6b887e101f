"""The parity checks every native encoder head must pass against transformers (eager attention).

A test makes a tiny scrambled checkpoint with `make_encoder_checkpoint(config_class, model_class, folder, style)`
(every parameter random, norms around 1) and calls `check_encoder_head(reference, folder, tmp_path, task)`, which
checks, within ATOL:
  - hidden states, attentions and logits on one text, a right-padded batch and a batch of sentence pairs;
  - a pruned model equals the masked one (hidden states and logits);
  - save_pretrained -> load_model gives identical outputs, and transformers' own class loads the saved folder
    with no missing weights and gives the same logits.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from models import load_model
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
VOCAB = 64
TEXT = "the cat sat on the mat ."
BATCH = ["a dog barked loudly and then ran away quickly .", "the cat sat ."]
PAIRS = [("who was it ?", "it was me ."), ("the cat sat ?", "a dog .")]

# tokenizer styles: special tokens (ids 0..3 in this order), single and pair templates, special-tokens map
STYLES = {
    "bert": (["[PAD]", "[CLS]", "[SEP]", "[MASK]"], "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1",
             {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
              "unk_token": "[UNK]"}),
    # RoBERTa: pad id 1, one segment (no type ids 1), pairs joined by </s> </s>
    "roberta": (["<s>", "<pad>", "</s>", "<mask>"], "<s> $A </s>", "<s> $A </s> </s> $B </s>",
                {"pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>", "mask_token": "<mask>",
                 "unk_token": "[UNK]", "bos_token": "<s>", "eos_token": "</s>"}),
}


def make_encoder_checkpoint(config_class: Any, model_class: Any, folder: Path, style: str, seed: int = 0,
                            token_types: bool = True, **config: Any):
    """A tiny scrambled transformers encoder of `model_class` saved to `folder` with a word-level tokenizer in
    `style`; returns it (eager, eval). `token_types=False`: the tokenizer says it returns no token_type_ids."""
    torch.manual_seed(seed)
    cfg = config_class(**{"vocab_size": VOCAB, **config})
    cfg._attn_implementation = "eager"
    model = model_class(cfg).eval()
    with torch.no_grad():  # scrambled: norms, biases and every matrix random, so parity sees each parameter
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5)
                    + (1.0 if "norm" in name.lower() else 0.0))
    model.save_pretrained(folder)
    special, single, pair, special_map = STYLES[style]
    save_tokenizer(word_tokenizer(special, single, pair), folder, special_map)
    if not token_types:  # as DistilBERT's and RoBERTa's own tokenizers: transformers' pipeline passes what it gets
        path = folder / "tokenizer_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()),
                                    "model_input_names": ["input_ids", "attention_mask"]}))
    return model


def fill_mask_matches_transformers(folder: Path, text: str) -> None:
    """Our fill-mask pipeline's top 5 (tokens exactly, scores within ATOL) equal transformers' on `text`, whose
    mask token is registered as one token, as real tokenizer files register it."""
    import transformers as tf
    from tokenizers import Tokenizer

    from models.pipelines import pipeline
    mask = STYLES["roberta" if "<mask>" in text else "bert"][3]["mask_token"]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.add_special_tokens([mask])
    tokenizer.save(str(folder / "tokenizer.json"))
    ours = pipeline("fill-mask", model=str(folder))(text)
    theirs = tf.pipeline("fill-mask", model=str(folder), tokenizer=str(folder))(text)
    assert len(ours) == 5 and [r["token"] for r in ours] == [r["token"] for r in theirs]
    torch.testing.assert_close(torch.tensor([r["score"] for r in ours]), torch.tensor([r["score"] for r in theirs]),
                               atol=ATOL, rtol=0)


def reference_inputs(reference, trace) -> dict[str, torch.Tensor]:
    """What transformers' model takes for our trace: token_type_ids only where it has more than one segment."""
    kwargs = dict(input_ids=trace.input_ids, attention_mask=trace.attention_mask)
    if getattr(reference.config, "type_vocab_size", 0) > 1 and trace.token_type_ids is not None:
        kwargs["token_type_ids"] = trace.token_type_ids
    return kwargs


def reference_logits(out) -> torch.Tensor:
    """transformers' logits in our layout: QA as (B, T, 2) of (start, end)."""
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits], -1)
    return out.logits


def assert_same_logits(ours: torch.Tensor, theirs: torch.Tensor, mask: torch.Tensor, atol: float = ATOL) -> None:
    assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
    if ours.dim() >= 2 and ours.shape[:2] == mask.shape:  # one output per position: compare the real ones
        real = mask.bool()
        ours, theirs = ours[real], theirs[real]
    torch.testing.assert_close(ours, theirs, atol=atol, rtol=0)


def assert_matches_reference(reference, trace, atol: float = ATOL) -> None:
    with torch.no_grad():
        out = reference(**reference_inputs(reference, trace), output_hidden_states=True, output_attentions=True)
    real = trace.attention_mask.bool()
    assert len(trace.hidden_states) == len(out.hidden_states)
    for a, b in zip(trace.hidden_states, out.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)
    assert len(trace.attentions) == len(out.attentions)
    for a, b in zip(trace.attentions, out.attentions):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=atol, rtol=0)
    assert_same_logits(trace.logits, reference_logits(out), trace.attention_mask, atol)


def check_encoder_head(reference, folder: Path, tmp_path: Path, task: str, atol: float = ATOL) -> None:
    """Every check in this module's docstring on the checkpoint in `folder` (made from `reference`)."""
    model = load_model(str(folder))
    assert model.task == task, (model.task, task)

    assert_matches_reference(reference, model.run(TEXT), atol)
    batch = model.run(BATCH)
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    assert_matches_reference(reference, batch, atol)
    pairs = model.run(PAIRS)
    assert_matches_reference(reference, pairs, atol)

    spec = {0: [0, 1], model.n_layers - 1: [model.n_heads - 1]}
    with model.mask_heads(spec):
        masked = model.run(BATCH)
    pruned = model.prune_heads(spec).run(BATCH)
    real = masked.attention_mask.bool()
    for a, b in zip(pruned.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=1e-5)
    assert_same_logits(pruned.logits, masked.logits, masked.attention_mask, 1e-5)

    saved = tmp_path / "saved"
    model.save_pretrained(saved)
    again = load_model(str(saved))
    assert again.task == task and again.labels == model.labels
    assert torch.equal(again.run(BATCH).logits, batch.logits)
    reloaded, info = type(reference).from_pretrained(saved, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    assert json.loads((saved / "config.json").read_text())["architectures"] == [type(reference).__name__]
    with torch.no_grad():
        theirs = reference_logits(reloaded.eval()(**reference_inputs(reloaded, batch)))
    assert_same_logits(batch.logits, theirs, batch.attention_mask, atol)
