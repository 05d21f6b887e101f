"""Text in, text out: the input adapter every text encoder-decoder (T5, BART, Marian, ...) shares.

`model.run(texts)` encodes the sources, generates greedily with the decoder's key/value cache (the
shared loop in models/generation.py), then runs the decoder once more over what it produced with
capture on, so the trace holds every pattern of the produced tokens (as Whisper's adapter does).
`run(texts, targets=[...])` teacher-forces target texts, tokenised as transformers' `text_target`
(the tokenizer's own special tokens, so T5's `</s>` ends each); `run(texts, decoder_input_ids=...)`
teacher-forces given decoder ids as they are. `generate(texts, max_new_tokens=...)` returns the new
ids per source (without the start token, with the end token if reached).

The trace follows Whisper's names. Its main fields are the decoder's: `tokens`, `input_ids`,
`attention_mask`, `hidden_states`, `attentions` (== extras["decoder_attentions"]) and `logits`, over
the decoder sequence [decoder_start] + target (+ end token). The source side is in `extras`:

- "source_tokens" (list per example, without padding), "source_ids", "source_attention_mask" (B, S);
- "target_tokens": the decoder's tokens again (== `trace.tokens`), so a page can ask for both by name;
- "encoder_hidden_states" (n_layers + 1 of (B, S, d), the last after the final norm), "encoder_attentions"
  (B, H, S, S), "cross_attentions" (B, H, T, S), "decoder_attentions" (B, H, T, T);
- "outputs": each decoder sequence as text (special tokens skipped), "prompt_length": 1 (the start token);
- "encoder_position_bias" / "decoder_position_bias" (and "position_bias", the decoder's), for families
  with a relative position bias (T5): (1, H, S, S) and (1, H, T, T) over the original heads.

Head masks and pruning are per stack, as on Whisper: "encoder", "decoder" (an integer layer means the
decoder's) and "cross". Sources longer than the encoder's limit are cut with a warning, keeping the
tokenizer's trailing special tokens as transformers' truncation does; an empty source is an InputError.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import torch

from .deferred_patterns import DEFERRED, collect
from .encoder_decoder import Seq2SeqOutput
from .errors import InputError
from .generation import greedy_decode
from .inputs import InputAdapter, Prepared, as_batch
from .seq2seq_steps import joined_decoder_output
from .text_checks import check_text, text_batch
from .tokenization import Encoded, truncation_warning
from .trace import Trace
from .transformer import ForwardOutput

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel

TASK = "seq2seq-lm"             # the head of a text encoder-decoder (transformers' AutoModelForSeq2SeqLM)
DEFAULT_MAX_LENGTH = 20         # transformers' generate default: max_length counts the decoder start token
LONGEST_SOURCE = 1024           # a full capture of the encoder stores n_layers * n_heads * S^2 weights


# generation-config settings that change which tokens transformers' generate picks, at the value that changes
# nothing; the greedy loop here applies none of them, so a checkpoint asking for one gets a warning in its trace
GREEDY_ONLY = {"num_beams": 1, "do_sample": False, "no_repeat_ngram_size": 0, "repetition_penalty": 1.0,
               "min_length": 0, "min_new_tokens": None, "encoder_no_repeat_ngram_size": 0,
               "encoder_repetition_penalty": 1.0, "num_beam_groups": 1, "exponential_decay_length_penalty": None,
               "sequence_bias": None}


def unapplied_generation_settings(model: "WorkbenchModel") -> list[str]:
    """A warning naming the generation settings the checkpoint asks for that greedy decoding here leaves out."""
    g = model.generation_config
    asked = [f"{key}={g[key]!r}" for key, neutral in GREEDY_ONLY.items() if g.get(key, neutral) != neutral]
    if not asked:
        return []
    return [f"{model.display_name}'s generation config asks for {', '.join(asked)}; the workbench decodes greedily "
            "(one beam, no sampling, none of those rules), so its output can differ from transformers' generate "
            "with that config."]


def source_limit(model: "WorkbenchModel") -> int:
    """The most source tokens the encoder reads."""
    return min(model.network.encoder.cfg.max_positions, LONGEST_SOURCE)


def decoder_start_id(model: "WorkbenchModel") -> int:
    g, hf = model.generation_config, model.config.hf_config
    for value in (g.get("decoder_start_token_id"), hf.get("decoder_start_token_id"), model.config.bos_token_id,
                  model.config.pad_token_id):
        if value is not None:
            return int(value)
    raise InputError(f"{model.display_name} names no decoder_start_token_id, so it cannot start decoding.")


def end_id(model: "WorkbenchModel") -> int | list[int] | None:
    """The end token, or the list of them a generation config may name (any one ends a sequence)."""
    return model.generation_config.get("eos_token_id", model.config.eos_token_id)


def _pad_id(model: "WorkbenchModel") -> int:
    ends = end_id(model)
    for value in (model.config.pad_token_id, ends[0] if isinstance(ends, list) and ends else ends):
        if value is not None and not isinstance(value, list):
            return int(value)
    return 0


def encode_texts(model: "WorkbenchModel", texts: Sequence[str], limit: int) -> Encoded:
    """Tokenise with the tokenizer's special tokens, right-padded; a text over `limit` loses tokens from the end of
    its content, not the special tokens the tokenizer adds around it (transformers' truncation), with a warning."""
    if model.tokenizer is None:
        raise InputError(f"{model.display_name} has no tokenizer; pass input_ids instead.")
    full = model.tokenizer.encode_batch(list(texts), max_length=10**9)
    backend = model.tokenizer.backend
    rows, warnings = [], []
    for i, (text, ids) in enumerate(zip(texts, full.input_ids.tolist())):
        ids = ids[: int(full.attention_mask[i].sum())]
        if len(ids) > limit:
            warnings.append(truncation_warning(i, len(texts), len(ids), limit, model.network.encoder.cfg.max_positions))
            plain = backend.encode(text, add_special_tokens=False).ids
            prefix = _prefix_length(ids, plain)
            suffix = len(ids) - len(plain) - prefix
            keep = max(limit - prefix - suffix, 0)
            ids = ids[: prefix + keep] + (ids[len(ids) - suffix:] if suffix else [])
        rows.append(ids)
    width = max(len(r) for r in rows)
    pad = _pad_id(model)
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])  # (B, S)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])  # (B, S)
    tokens = [[model.tokenizer.id_to_token(t) for t in r] for r in rows]
    return Encoded(input_ids, mask, torch.zeros_like(input_ids), tokens, warnings)


# transformers' `clean_up_tokenization`: the spaces a word-level decode leaves before punctuation and contractions
_CLEAN_UPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
              (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


def output_text(model: "WorkbenchModel", ids: Sequence[int]) -> str:
    """A decoder sequence as text without its special tokens (start, end, padding), as transformers' pipelines
    decode it (`skip_special_tokens=True`, and the tokenizer's own clean-up of spaces)."""
    tokenizer = model.tokenizer
    if tokenizer is None:
        return ""
    special = {tokenizer.token_to_id(t) for t in tokenizer.special.values()} - {None}
    text = tokenizer.decode([i for i in ids if i not in special], skip_special_tokens=True)
    if tokenizer.extra_config.get("clean_up_tokenization_spaces"):
        for before, after in _CLEAN_UPS:
            text = text.replace(before, after)
    return text


def _prefix_length(with_special: list[int], plain: list[int]) -> int:
    """How many special tokens the tokenizer put before the content (BOS-type templates), 0 for T5's."""
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start:start + len(plain)] == plain:
            return start
    return 0


class TextToTextInputs(InputAdapter):
    """Sources as text (or `input_ids=` with `attention_mask=`); outputs generated, or teacher-forced."""
    modality = "text"
    accepts = ("texts", "input_ids", "attention_mask", "targets", "decoder_input_ids", "decoder_attention_mask",
               "max_new_tokens")

    # ------------------------------------------------------------------ the source side
    def prepare(self, model: "WorkbenchModel", texts=None, input_ids=None, attention_mask=None, targets=None,
                decoder_input_ids=None, decoder_attention_mask=None, max_new_tokens: int | None = None) -> Prepared:
        """The encoder's inputs (source ids and mask) and the source tokens, without running anything."""
        if input_ids is not None:
            ids = torch.as_tensor(input_ids, dtype=torch.long)
            ids = ids[None] if ids.dim() == 1 else ids
            if ids.numel() == 0:
                raise InputError("Empty source: no token ids given.")
            if int(ids.max()) >= model.config.vocab_size or int(ids.min()) < 0:
                raise InputError(f"Token ids must lie in 0..{model.config.vocab_size - 1}.")
            mask = torch.ones_like(ids) if attention_mask is None else torch.as_tensor(attention_mask)
            tokens = [[model.tokenizer.id_to_token(int(i)) if model.tokenizer else str(int(i)) for i in row[: int(m.sum())]]
                      for row, m in zip(ids, mask)]
            return Prepared(inputs={"input_ids": ids, "attention_mask": mask}, tokens=tokens,
                            texts=[" ".join(t) for t in tokens])
        if texts is None:
            raise InputError(f"No input: pass the source text (a string or a list of strings) to {model.display_name}.")
        batch = text_batch(texts)
        if any(isinstance(t, tuple) for t in batch):
            raise InputError(f"{model.display_name} reads one source text per example, not sentence pairs.")
        for i, text in enumerate(batch):  # bytes, surrogates, non-strings: named before the tokenizer sees them
            check_text(text, i if len(batch) > 1 else None)
        enc = encode_texts(model, batch, source_limit(model))
        return Prepared(inputs={"input_ids": enc.input_ids, "attention_mask": enc.attention_mask}, tokens=enc.tokens,
                        texts=batch, warnings=enc.warnings)

    def encode(self, model: "WorkbenchModel", prepared: Prepared, capture: bool | str) -> ForwardOutput:
        ids, mask = prepared.inputs["input_ids"], prepared.inputs["attention_mask"]
        out = model.network.encode(model.active_scales(), capture, input_ids=ids, attention_mask=mask)
        out.extras["attention_mask"] = mask  # what cross-attention hides, at every decoding step too
        return out

    # ------------------------------------------------------------------ generation
    def greedy(self, model: "WorkbenchModel", encoder_out: ForwardOutput, max_new_tokens: int | None) -> list[list[int]]:
        """Each source's decoder sequence: the start token, the new tokens and the end token (if reached)."""
        return self._decode(model, encoder_out, max_new_tokens, False)[0]

    def greedy_traced(self, model: "WorkbenchModel", encoder_out: ForwardOutput, max_new_tokens: int | None
                      ) -> tuple[list[list[int]], ForwardOutput | None]:
        """One source's decoder sequence and the decoder's output over all of it, joined from the decoding steps
        (deferred patterns) plus one more step for the last token (models/seq2seq_steps.py); None for the output
        when the steps cannot be joined."""
        sequences, steps, last, cache = self._decode(model, encoder_out, max_new_tokens, DEFERRED)
        if len(sequences[0]) > 1:  # the last new token has not been run yet
            steps.append(model.forward(decoder_input_ids=last, encoder_out=encoder_out, cache=cache,
                                       capture=DEFERRED).decoder)
        T = len(sequences[0])
        bias_module = model.network.decoder.position_bias
        bias = bias_module(T, T, 0).to(steps[0].final.dtype) if bias_module is not None else None
        return sequences, joined_decoder_output(steps, bias)

    def _decode(self, model: "WorkbenchModel", encoder_out: ForwardOutput, max_new_tokens: int | None,
                step_capture: bool | str):
        if model.network.head is None:
            raise InputError(f"{model.display_name} has no language-modelling head to generate with; "
                             "teacher-force with decoder_input_ids= to read its states.")
        g = model.generation_config
        start = decoder_start_id(model)
        room = model.config.max_positions - 1
        if max_new_tokens is None:
            max_new_tokens = g.get("max_new_tokens") or (g.get("max_length") or DEFAULT_MAX_LENGTH) - 1
        steps = max(0, min(int(max_new_tokens), room))
        forced_bos, forced_eos = g.get("forced_bos_token_id"), g.get("forced_eos_token_id")
        suppress = list(g.get("suppress_tokens") or []) + [w[0] for w in g.get("bad_words_ids") or [] if len(w) == 1]
        cache: list[dict[str, torch.Tensor]] = [{} for _ in model.network.decoder.blocks]
        index = [0]

        def step(ids: torch.Tensor):
            out = model.forward(decoder_input_ids=ids, encoder_out=encoder_out, cache=cache, capture=step_capture)
            logits = out.decoder.logits[:, -1].float()  # (B, vocab)
            forced = forced_bos if index[0] == 0 else (forced_eos if index[0] == steps - 1 else None)
            if forced is not None:  # transformers' ForcedBOS / ForcedEOS logits processors (BART, mBART)
                logits = torch.full_like(logits, -torch.inf)
                logits[:, forced] = 0.0
            index[0] += 1
            return logits, out.decoder if step_capture else None

        B = encoder_out.final.shape[0]
        new, outputs, last = greedy_decode(step, torch.full((B, 1), start), steps, end_id(model), suppress=suppress,
                                           begin_suppress=g.get("begin_suppress_tokens") or (),
                                           keep_outputs=bool(step_capture))
        return [[start] + tokens for tokens in new], outputs, last, cache

    def generate(self, model: "WorkbenchModel", texts=None, max_new_tokens: int | None = None, **given: Any
                 ) -> list[list[int]]:
        """New token ids per source (without the start token, with the end token if reached)."""
        prepared = self.prepare(model, texts=texts, **given)
        return [seq[1:] for seq in self.greedy(model, self.encode(model, prepared, False), max_new_tokens)]

    # ------------------------------------------------------------------ run and trace
    def run(self, model: "WorkbenchModel", capture: bool | str, texts=None, input_ids=None, attention_mask=None,
            targets=None, decoder_input_ids=None, decoder_attention_mask=None,
            max_new_tokens: int | None = None) -> Trace:
        prepared = self.prepare(model, texts=texts, input_ids=input_ids, attention_mask=attention_mask)
        B = prepared.inputs["input_ids"].shape[0]
        encoder_out = self.encode(model, prepared, capture)
        if decoder_input_ids is not None:
            ids = torch.as_tensor(decoder_input_ids, dtype=torch.long)
            ids = ids[None] if ids.dim() == 1 else ids
            mask = torch.ones_like(ids) if decoder_attention_mask is None else torch.as_tensor(decoder_attention_mask)
            sequences = [row[: int(m.sum())].tolist() for row, m in zip(ids, mask)]
        elif targets is not None:
            given = as_batch(targets)
            if len(given) != B:
                raise InputError(f"Give one target per source: {B} sources, {len(given)} targets.")
            target = encode_texts(model, given, model.config.max_positions - 1)
            prepared.warnings += [w.replace("Example", "Target") for w in target.warnings]
            start = decoder_start_id(model)
            sequences = [[start] + row[: int(m.sum())].tolist() for row, m in zip(target.input_ids, target.attention_mask)]
        elif capture == DEFERRED and B == 1:  # a pipeline's call: the decoding steps make the trace
            sequences, joined = self.greedy_traced(model, encoder_out, max_new_tokens)
            prepared.warnings += unapplied_generation_settings(model)
            if joined is not None:
                ids, mask = torch.tensor(sequences), torch.ones(1, len(sequences[0]), dtype=torch.long)
                return self.trace_of(model, prepared, Seq2SeqOutput(encoder_out, joined), ids, mask, sequences)
        else:
            sequences = self.greedy(model, encoder_out, max_new_tokens)
            prepared.warnings += unapplied_generation_settings(model)
        if any(not s for s in sequences) or len(sequences) != B:
            raise InputError(f"Give one non-empty decoder sequence per source ({B} sources).")
        T = max(len(s) for s in sequences)
        if T > model.config.max_positions:
            raise InputError(f"{model.display_name}'s decoder reads at most {model.config.max_positions} tokens; "
                             f"a target here has {T}. Give a shorter one.")
        pad = _pad_id(model)
        ids = torch.tensor([s + [pad] * (T - len(s)) for s in sequences])  # (B, T)
        mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in sequences])  # (B, T)
        out = model.forward(decoder_input_ids=ids, decoder_attention_mask=mask, capture=capture, encoder_out=encoder_out)
        return self.trace_of(model, prepared, out, ids, mask, sequences)

    def trace_of(self, model: "WorkbenchModel", prepared: Prepared, out: Seq2SeqOutput, ids: torch.Tensor,
                 mask: torch.Tensor, sequences: list[list[int]]) -> Trace:
        dec, enc = out.decoder, out.encoder
        hidden = list(dec.resid)
        hidden[-1] = dec.final  # transformers' last hidden state is after the final norm
        enc_hidden = list(enc.resid)
        enc_hidden[-1] = enc.final
        decoder_patterns = collect(dec.attentions)  # one object: `attentions` and `decoder_attentions` share it
        tokens = [[model.tokenizer.id_to_token(i) if model.tokenizer else str(i) for i in s] for s in sequences]
        extras: dict[str, Any] = {
            "encoder_attentions": collect(enc.attentions), "encoder_hidden_states": tuple(enc_hidden),
            "cross_attentions": collect(dec.cross_attentions), "decoder_attentions": decoder_patterns,
            "source_tokens": prepared.tokens, "source_ids": prepared.inputs["input_ids"],
            "source_attention_mask": prepared.inputs["attention_mask"], "target_tokens": tokens,
            "outputs": [output_text(model, s) for s in sequences], "prompt_length": 1,
        }
        for stack, side in (("encoder", enc), ("decoder", dec)):
            if "position_bias" in side.extras:
                extras[f"{stack}_position_bias"] = side.extras["position_bias"]
        if "decoder_position_bias" in extras:
            extras["position_bias"] = extras["decoder_position_bias"]  # the trace's main stack is the decoder
        return Trace(tokens=tokens, input_ids=ids, attention_mask=mask, hidden_states=tuple(hidden),
                     attentions=decoder_patterns, resid_final=dec.resid_final, logits=dec.logits,
                     head_ids=model.head_ids(), warnings=list(prepared.warnings), texts=prepared.texts,
                     model_name=model.name, modality="text", extras=extras)


TEXT_TO_TEXT_INPUTS = TextToTextInputs()
