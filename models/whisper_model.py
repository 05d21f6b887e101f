"""`WorkbenchModel` for Whisper: transcribe, trace encoder, decoder and cross-attention, mask and prune any head.

`run(audio=[...])` transcribes greedily (step by step, with keys and values cached) and then runs
the decoder once more over the whole transcript with capture on, so the trace holds every
pattern of the tokens it produced. `run(audio=[...], texts=["a transcript"])` scores a given
transcript instead (teacher forcing). Head keys: a decoder layer number, "encoder.N", "cross.N",
or nested {"encoder": {...}, "decoder": {...}, "cross": {...}}.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from safetensors.torch import save_file

from .deferred_patterns import collect
from .errors import HeadIndexError, InputError
from .families.whisper import (FRAMES_PER_POSITION, SECONDS_PER_POSITION, Seq2SeqOutput, WhisperNetwork,
                               parse_key, split_scales, stack_key, without_heads)
from .modal_model import ModalWorkbenchModel
from .preprocessing.audio import load_audio
from .trace import Trace
from .mask_context import masks_active, with_active_masks

MAX_SECONDS = 30.0  # Whisper's encoder reads one 30 s window
# files a Whisper folder carries besides weights and config, copied as they are on save
_AUX_FILES = ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
              "vocab.json", "merges.txt", "normalizer.json", "added_tokens.json")


class WhisperWorkbenchModel(ModalWorkbenchModel):
    network: WhisperNetwork

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        path = Path(self.source) / "generation_config.json" if self.source else None
        self.generation_config = json.loads(path.read_text()) if path and path.exists() else {}

    # ------------------------------------------------------------------ facts
    @property
    def is_encoder_decoder(self) -> bool:
        return True

    @property
    def can_generate(self) -> bool:
        return True

    @property
    def has_lm_head(self) -> bool:
        return True

    @property
    def stacks(self) -> tuple[str, ...]:
        return ("encoder", "decoder", "cross")

    def head_ids(self) -> list[list[int]]:
        """Decoder self-attention heads per layer: the layers of `trace.attentions`."""
        return [list(block.attn.head_ids) for block in self.network.decoder.blocks]

    def stack_head_ids(self) -> dict[str, list[list[int]]]:
        return {"encoder": [list(b.attn.head_ids) for b in self.network.encoder.blocks],
                "decoder": self.head_ids(),
                "cross": [list(b.cross_attn.head_ids) for b in self.network.decoder.blocks]}

    def prompt_ids(self) -> list[int]:
        """<|startoftranscript|> [language, task] <|notimestamps|>, as transformers' generate builds them."""
        g = self.generation_config
        ids = [g.get("decoder_start_token_id", self.config.bos_token_id)]
        if g.get("is_multilingual"):
            ids += [g["lang_to_id"]["<|en|>"], g["task_to_id"]["transcribe"]]
        if g.get("no_timestamps_token_id") is not None:
            ids.append(g["no_timestamps_token_id"])
        return ids

    # ------------------------------------------------------------------ head selection
    def _head_scales(self, spec) -> dict[Any, torch.Tensor]:
        flat = _flatten_spec(spec, self.config.n_layers, self.config.n_heads)
        scales = {}
        for key, chosen in flat.items():
            stack, layer = self._check_layer(key)
            present = self.config.heads_in_layer(stack_key(stack, layer))
            per_head = dict(chosen) if isinstance(chosen, Mapping) else {h: 0.0 for h in _as_list(chosen)}
            vector = torch.ones(len(present))
            for head, value in per_head.items():
                self._check_head(stack, layer, head, present)
                if not 0.0 <= float(value) <= 1.0:
                    raise HeadIndexError(f"Scale {value} for head {head} of {stack} layer {layer} must lie between 0 and 1.")
                vector[present.index(int(head))] = float(value)
            scales[stack_key(stack, layer)] = vector
        return scales

    def _check_layer(self, key) -> tuple[str, int]:
        try:
            stack, layer = parse_key(key)
        except InputError as error:
            raise HeadIndexError(str(error)) from None
        n = self.config.hf_config["encoder_layers"] if stack == "encoder" else self.config.n_layers
        if not 0 <= layer < n:
            raise HeadIndexError(f"Layer {layer} is out of range: Whisper's {stack} has layers 0..{n - 1}.")
        return stack, layer

    def _check_head(self, stack: str, layer: int, head, present: list[int]) -> None:
        n = self.config.hf_config["encoder_attention_heads"] if stack == "encoder" else self.config.n_heads
        if isinstance(head, bool) or not isinstance(head, int) or not 0 <= head < n:
            raise HeadIndexError(f"Head {head} of {stack} layer {layer} is out of range: heads are 0..{n - 1}.")
        if head not in present:
            raise HeadIndexError(f"Head {head} of {stack} layer {layer} was pruned; it cannot be selected.")

    @contextlib.contextmanager
    def mask_heads(self, spec) -> Iterator["WhisperWorkbenchModel"]:
        with masks_active(self.network, self._head_scales(spec)):
            yield self

    def prune_heads(self, heads) -> "WhisperWorkbenchModel":
        flat = _flatten_spec(heads, self.config.n_layers, self.config.n_heads)
        chosen: dict[Any, list[int]] = {}
        for key, selected in flat.items():
            stack, layer = self._check_layer(key)
            present = self.config.heads_in_layer(stack_key(stack, layer))
            selected = sorted(set(_as_list(selected)))
            for head in selected:
                self._check_head(stack, layer, head, present)
            chosen[stack_key(stack, layer)] = selected
        network, config = without_heads(self.network, self.config, chosen)
        return type(self)(network, config, self.tokenizer, self.processor, self.spec, name=f"{self.name} (pruned)",
                          task=self.task, labels=dict(self.labels), source=self.source)

    # ------------------------------------------------------------------ running
    def _active_scales(self, head_scales: dict | None) -> dict | None:
        return with_active_masks(self.network, head_scales)

    def forward(self, input_features=None, decoder_input_ids=None, decoder_attention_mask=None,
                head_scales: dict | None = None, capture: bool | str = True, encoder_out=None, **_: Any) -> Seq2SeqOutput:
        """Encoder and decoder with this context's head masks; gradients flow."""
        return self.network(input_features=input_features, decoder_input_ids=decoder_input_ids,
                            decoder_attention_mask=decoder_attention_mask, head_scales=self._active_scales(head_scales),
                            capture=capture, encoder_out=encoder_out)

    def features(self, audio, sampling_rate: int | None = None) -> tuple[torch.Tensor, list]:
        """input_features (B, n_mels, 3000) and the waveforms at 16 kHz."""
        batch = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        if not batch:
            raise InputError("No audio given.")
        rate = self.processor.sampling_rate
        waves = [load_audio(a, rate, sampling_rate, max_seconds=MAX_SECONDS,
                            what=f"Audio for Whisper ({a})" if isinstance(a, (str, Path)) else "The audio for Whisper")
                 for a in batch]
        return self.processor(waves), waves

    @torch.no_grad()
    def greedy(self, encoder_final: torch.Tensor, max_new_tokens: int | None = None) -> list[list[int]]:
        """Greedy decoding from the prompt: each sequence is the prompt, the new tokens and the end token."""
        g = self.generation_config
        prompt = self.prompt_ids()
        limit = g.get("max_length", self.config.max_positions)
        steps = limit - len(prompt) if max_new_tokens is None else min(max_new_tokens, limit - len(prompt))
        eos = self.config.eos_token_id
        suppress = torch.tensor(g.get("suppress_tokens") or [], dtype=torch.long)
        begin_suppress = torch.tensor(g.get("begin_suppress_tokens") or [], dtype=torch.long)
        scales = split_scales(self._active_scales(None))
        decoder = self.network.decoder
        B = encoder_final.shape[0]
        cross_kv = [block.cross_attn.project_kv(encoder_final) for block in decoder.blocks]  # once per audio
        ids = torch.tensor([prompt] * B)  # (B, P)
        sequences = [list(prompt) for _ in range(B)]
        finished = torch.zeros(B, dtype=torch.bool)
        cache: list = [None] * len(decoder.blocks)
        offset = 0
        for step in range(steps):
            out = decoder(ids, None, cross_kv, scales["decoder"], scales["cross"], capture=False, cache=cache, offset=offset)
            offset += ids.shape[1]
            cache = out.cache
            logits = out.logits[:, -1].float()  # (B, vocab)
            if len(suppress):
                logits[:, suppress] = -math.inf
            if step == 0 and len(begin_suppress):
                logits[:, begin_suppress] = -math.inf  # no blank or end token as the first word
            next_ids = logits.argmax(-1)  # (B,)
            next_ids = torch.where(finished, torch.full_like(next_ids, eos), next_ids)
            for i in range(B):
                if not finished[i]:
                    sequences[i].append(int(next_ids[i]))
            finished |= next_ids == eos
            if bool(finished.all()):
                break
            ids = next_ids[:, None]
        return sequences

    @torch.no_grad()
    def generate(self, audio, sampling_rate: int | None = None, max_new_tokens: int | None = None) -> list[list[int]]:
        """New token ids per clip (without the prompt, with the end token if reached)."""
        features, _ = self.features(audio, sampling_rate)
        encoder_out = self.network.encode(features, split_scales(self._active_scales(None)), capture=False)
        prompt = len(self.prompt_ids())
        return [seq[prompt:] for seq in self.greedy(encoder_out.final, max_new_tokens)]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def transcribe(self, audio, sampling_rate: int | None = None) -> list[str]:
        return [self.decode(ids) for ids in self.generate(audio, sampling_rate)]

    @torch.no_grad()
    def run(self, texts=None, *, audio=None, sampling_rate: int | None = None, capture: bool | str = True,
            max_new_tokens: int | None = None, images=None, **kwargs: Any) -> Trace:
        """Transcribe (or, with `texts`, score given transcripts) and trace encoder, decoder and cross-attention."""
        if images is not None:
            raise InputError("Whisper reads audio; pass audio=[...].")
        if audio is None:
            raise InputError("No input: pass audio=[waveform or file] (and sampling_rate= for arrays) to Whisper.")
        features, waves = self.features(audio, sampling_rate)
        scales = split_scales(self._active_scales(None))
        encoder_out = self.network.encode(features, scales, capture=capture)
        prompt = self.prompt_ids()
        if texts is not None:
            given = [texts] if isinstance(texts, str) else list(texts)
            if len(given) != len(waves):
                raise InputError(f"Give one transcript per clip: {len(waves)} clips, {len(given)} transcripts.")
            sequences = [prompt + self.tokenizer.backend.encode(t, add_special_tokens=False).ids
                         + [self.config.eos_token_id] for t in given]
        else:
            sequences = self.greedy(encoder_out.final, max_new_tokens)
        T = max(len(s) for s in sequences)
        pad = self.config.pad_token_id if self.config.pad_token_id is not None else self.config.eos_token_id
        ids = torch.tensor([s + [pad] * (T - len(s)) for s in sequences])  # (B, T)
        mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in sequences])  # (B, T)
        out = self.forward(decoder_input_ids=ids, decoder_attention_mask=mask, capture=capture, encoder_out=encoder_out)
        dec = out.decoder
        hidden = list(dec.resid)
        hidden[-1] = dec.final
        enc_hidden = list(encoder_out.resid)
        enc_hidden[-1] = encoder_out.final
        rate = self.processor.sampling_rate
        decoder_patterns = collect(dec.attentions)  # one object: `attentions` and `decoder_attentions` share it
        extras = {
            "encoder_attentions": collect(encoder_out.attentions), "encoder_hidden_states": tuple(enc_hidden),
            "cross_attentions": collect(dec.cross_attentions), "decoder_attentions": decoder_patterns,
            "transcripts": [self.decode(s[len(prompt):]) for s in sequences], "prompt_length": len(prompt),
            "waveforms": waves, "sampling_rate": rate, "input_features": features,
            "seconds_per_position": SECONDS_PER_POSITION,
            # encoder positions that hold audio; the rest of the 30 s window is padding silence
            "audio_positions": [min(math.ceil(len(w) / (self.processor.hop_length * FRAMES_PER_POSITION)),
                                    encoder_out.final.shape[1]) for w in waves],
            "sources": [str(a) if isinstance(a, (str, Path)) else "audio" for a in
                        (audio if isinstance(audio, (list, tuple)) else [audio])],
        }
        tokens = [[self.tokenizer.decode([i]) for i in s] for s in sequences]
        return Trace(tokens=tokens, input_ids=ids, attention_mask=mask, hidden_states=tuple(hidden),
                     attentions=decoder_patterns, resid_final=dec.resid_final, logits=dec.logits,
                     head_ids=self.head_ids(), texts=extras["sources"], model_name=self.name, modality="audio",
                     extras=extras)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | Path) -> Path:
        """WhisperForConditionalGeneration format; pruned models keep their heads under `workbench_pruned_heads`."""
        from .families.whisper import WHISPER
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.source and Path(self.source).resolve() != folder.resolve():
            for name in _AUX_FILES:
                if (Path(self.source) / name).exists():
                    shutil.copy(Path(self.source) / name, folder / name)
        tensors = {"model." + k: v for k, v in WHISPER.state_dict_to_hf(self.network.state_dict(), self.config).items()}
        hf_config = WHISPER.config_to_hf(self.config)
        hf_config["architectures"] = ["WhisperForConditionalGeneration"]
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True))
        self.processor.save(folder)
        if not (folder / "tokenizer.json").exists() and self.tokenizer is not None:
            self.tokenizer.save(folder)
        return folder


def _as_list(chosen) -> list[int]:
    if isinstance(chosen, (int,)) and not isinstance(chosen, bool):
        return [chosen]
    return [int(h) if not isinstance(h, bool) else h for h in chosen]


def _flatten_spec(spec, n_layers: int, n_heads: int) -> dict[Any, Any]:
    """Nested {"encoder": {...}, ...}, flat {0: .., "cross.1": ..} or a decoder (layers, heads) tensor -> flat."""
    if isinstance(spec, torch.Tensor):
        if spec.shape != (n_layers, n_heads):
            raise HeadIndexError(f"A head mask tensor for Whisper's decoder must have shape ({n_layers}, {n_heads}).")
        return {layer: {h: float(spec[layer, h]) for h in range(n_heads)} for layer in range(n_layers)}
    if not isinstance(spec, Mapping):
        raise HeadIndexError("Give heads as {layer: [heads]}, {'encoder.N': [heads]}, or "
                             "{'encoder': {...}, 'decoder': {...}, 'cross': {...}}.")
    flat: dict[Any, Any] = {}
    for key, value in spec.items():
        if key in ("encoder", "decoder", "cross"):
            if not isinstance(value, Mapping):
                raise HeadIndexError(f"{key!r} must map layers to heads, e.g. {{{key!r}: {{0: [1, 2]}}}}.")
            for layer, chosen in value.items():
                flat[f"{key}.{layer}"] = chosen
        else:
            flat[key] = value
    return flat
