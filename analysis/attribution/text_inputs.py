"""Text attribution inputs: token ids, the padding baseline, what the model's output is read at, and the target.

Captum's forward functions are built here over the core, decoupled from the model object as
Captum does it: `TokenEmbedding` is a private module around the shared token embedding, so the
hook Captum attaches for layer attribution sits on that private module and never on the cached
model other sessions are using.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from models.errors import InputError
from models.tokenization import TextInput
from models.workbench_model import WorkbenchModel

from .targets import OutputNames

# tasks whose output a single score can be read from; others have no "decision" to explain here
SUPPORTED_TASKS = ("sequence-classification", "causal-lm", "masked-lm")


@dataclass
class TextInputs:
    input_ids: torch.Tensor          # (1, T)
    attention_mask: torch.Tensor     # (1, T) all ones: one example, no padding
    token_type_ids: torch.Tensor | None  # (1, T) segment ids, for encoders that have them
    baseline_ids: torch.Tensor       # (1, T) padding everywhere except the special tokens
    tokens: list[str]
    special: list[bool]              # [CLS], [SEP], BOS...: identical in input and baseline
    position: int | None             # where the output is read: None for a pooled classifier
    read_position: int               # the token whose representation decides: [CLS], last token, [MASK]
    text: str


class TokenEmbedding(nn.Module):
    """ids -> token embeddings through the model's own table: a private layer for Captum to hook."""

    def __init__(self, word: nn.Embedding) -> None:
        super().__init__()
        self.word = word

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.word(input_ids)  # (B, T, d)


def check_task(model: WorkbenchModel) -> str:
    if model.task not in SUPPORTED_TASKS:
        what = f"a {model.task!r} head" if model.task else "no task head"
        raise InputError(f"{model.name or 'This model'} has {what}, so there is no decision to explain. "
                         "Attribution needs a classifier (task 'sequence-classification'), a causal language model, "
                         "or a masked language model.")
    if model.tokenizer is None:
        raise InputError(f"{model.name or 'This model'} has no tokenizer, so it cannot read text.")
    return model.task


def encode_for_attribution(model: WorkbenchModel, text: TextInput) -> TextInputs:
    """Tokenize one text (or sentence pair) and build the padding baseline with special tokens kept."""
    task = check_task(model)
    parts = text if isinstance(text, tuple) else (text,)
    if not all(isinstance(p, str) for p in parts) or not any(p.strip() for p in parts):
        raise InputError("Empty input: type a sentence to explain.")
    enc = model.encode(text)
    if enc.warnings:
        raise InputError(f"The text is too long for {model.name or 'this model'}: {enc.warnings[0]} "
                         "Shorten it: attributions of a cut text would explain a different input.")
    ids = enc.input_ids  # (1, T)
    tokens = enc.tokens[0]
    special_ids = _special_ids(model)
    special = [int(i) in special_ids for i in ids[0]]
    if all(special):
        raise InputError("The text has only special tokens: type at least one word.")
    pad = model.tokenizer.pad_token_id
    if pad is None:
        raise InputError(f"{model.name or 'This model'} has no padding, end or unknown token for the baseline.")
    keep = torch.tensor(special)[None]  # (1, T)
    baseline = torch.where(keep, ids, torch.full_like(ids, pad))  # (1, T)
    types = enc.token_type_ids if getattr(model.network.embed, "token_type", None) is not None else None
    T = ids.shape[1]
    if task == "masked-lm":
        mask_token = model.tokenizer.special.get("mask_token")
        mask_id = model.tokenizer.token_to_id(mask_token) if mask_token else None
        hits = (ids[0] == mask_id).nonzero().flatten().tolist() if mask_id is not None else []
        if not hits:
            raise InputError(f"A masked language model explains its guess for a {mask_token or '[MASK]'} token: "
                             "put one in the text.")
        position, read = hits[0], hits[0]
    elif task == "causal-lm":
        position, read = T - 1, T - 1  # the next token is predicted at the last position
    else:
        # a pooled encoder classifier reads [CLS]; a decoder classifier reads the last token
        position, read = None, (T - 1 if model.config.causal else 0)
    return TextInputs(ids, enc.attention_mask, types, baseline, tokens, special, position, read,
                      text if isinstance(text, str) else " / ".join(text))


def _special_ids(model: WorkbenchModel) -> set[int]:
    ids = {model.tokenizer.token_to_id(t) for t in model.tokenizer.special.values()}
    ids.discard(None)
    unk = model.tokenizer.special.get("unk_token")
    ids.discard(model.tokenizer.token_to_id(unk) if unk else None)  # an unknown word is content, not structure
    return {int(i) for i in ids}


class TextForward:
    """The functions Captum calls: ids or embeddings -> (B, n_outputs) scores at the read position."""

    def __init__(self, model: WorkbenchModel, inputs: TextInputs) -> None:
        self.model = model
        self.inputs = inputs
        self.embedding = TokenEmbedding(model.network.embed.word)
        # Only one position of the last layer is ever read (the scored token, or [CLS] under a pooler), on
        # every one of the many steps Captum runs: the last layer computes just that position.
        head_reads = getattr(model.network.head, "reads_positions", None)
        self.read_positions = [inputs.position] if inputs.position is not None else head_reads

    def _read(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores from `from_embeds`' logits, where the last layer computed the read position alone."""
        if self.inputs.position is None:
            return logits  # (B, n_labels)
        return logits[:, 0]  # (B, vocab): the one position the last layer computed

    def read_full(self, logits: torch.Tensor) -> torch.Tensor:
        """Scores from the logits of a full forward (every position computed)."""
        if self.inputs.position is None:
            return logits  # (B, n_labels)
        return logits[:, self.inputs.position]  # (B, vocab)

    def from_embeds(self, embeds: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model.forward(inputs_embeds=embeds, attention_mask=attention_mask,
                                 token_type_ids=token_type_ids, capture=False, read_positions=self.read_positions)
        return self._read(out.logits)

    def from_ids(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        # through the private TokenEmbedding, so layer methods hook it and not the shared model
        return self.from_embeds(self.embedding(input_ids), attention_mask, token_type_ids)

    def args(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        return (self.inputs.attention_mask, self.inputs.token_type_ids)


def output_names(model: WorkbenchModel, inputs: TextInputs) -> OutputNames:
    """Class labels for classifiers; vocabulary tokens for language models."""
    if inputs.position is None:
        return OutputNames.classes(model.labels)
    return OutputNames.tokens(model.tokenizer.id_to_token, model.tokenizer.token_to_id)
