"""Input adapters: what `WorkbenchModel.run` accepts for each modality, turned into network inputs and a trace.

A family names its adapter; the model has one `run` that asks it to `prepare` the arguments
(refusing any it does not take, by name) and to build the `Trace` from the network's output.
Text, images (ViT-type) and frame-level audio (Wav2Vec2-type) live here; Whisper's adapter,
which transcribes before it traces, lives with its family.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from .deferred_patterns import collect
from .errors import InputError
from .generation import decode_text
from .preprocessing.audio import load_audio
from .preprocessing.image import load_image
from .text_checks import check_token_ids
from .trace import Trace

if TYPE_CHECKING:
    from .transformer import ForwardOutput
    from .workbench_model import WorkbenchModel

# Longest audio an encoder run accepts: a full capture stores n_layers * n_heads * T^2 weights,
# and at 50 frames per second 30 s is 1,500 frames (2.25 M weights per head).
MAX_ENCODER_SECONDS = 30.0
MODAL_KEYWORDS = ("texts", "images", "audio", "sampling_rate")


@dataclass
class Prepared:
    """Tensors for the network plus what a trace needs to show them."""
    inputs: dict[str, Any]               # keyword arguments of the network's forward
    tokens: list[list[str]]              # a label per position (token, patch or frame), per example
    texts: list[Any] = field(default_factory=list)       # what was run, as shown back to the user
    warnings: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)  # images, waveforms, grid, seconds per frame, ...


class InputAdapter:
    """The arguments `run` takes for one modality (besides `capture`), and how they become a trace."""
    modality = "text"
    accepts: tuple[str, ...] = ()

    def check(self, model: "WorkbenchModel", given: dict[str, Any]) -> None:
        """Refuse, by name, every argument this modality does not take."""
        unknown = sorted(k for k, v in given.items() if v is not None and k not in self.accepts)
        if unknown:
            what = {"text": "text", "image": "images (images=[...])", "audio": "audio (audio=[...])"}[self.modality]
            raise InputError(f"{model.display_name} reads {what}; it cannot take {', '.join(unknown)}.")

    def prepare(self, model: "WorkbenchModel", **given: Any) -> Prepared:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, model: "WorkbenchModel", capture: bool | str, **given: Any) -> Trace:
        prepared = self.prepare(model, **given)
        out = model.forward(**{k: v for k, v in prepared.inputs.items() if v is not None}, capture=capture)
        return self.trace(model, prepared, out)

    def generate(self, model: "WorkbenchModel", *args: Any, **kwargs: Any) -> Any:
        raise InputError(f"{model.display_name} reads {self.modality} and does not generate text.")

    def trace(self, model: "WorkbenchModel", prepared: Prepared, out: "ForwardOutput") -> Trace:
        """The trace of a one-stack network's output: every state, pattern and the head's logits."""
        mask = prepared.inputs.get("attention_mask")
        mask = out.extras.get("attention_mask", mask)
        hidden = list(out.resid)
        hidden[-1] = out.final  # transformers' last hidden state is after the final norm
        input_ids = prepared.inputs.get("input_ids")
        if input_ids is None:  # patches or frames: no token ids
            input_ids = torch.full(tuple(mask.shape), -1, dtype=torch.long)
        return Trace(
            tokens=prepared.tokens, input_ids=input_ids, attention_mask=mask, hidden_states=tuple(hidden),
            attentions=collect(out.attentions), resid_final=out.resid_final, logits=out.logits,
            token_type_ids=prepared.inputs.get("token_type_ids"), pooled=out.extras.get("pooled"),
            head_ids=model.head_ids(), warnings=prepared.warnings, texts=prepared.texts, model_name=model.name,
            modality=self.modality,
            extras=self.trace_extras(prepared, out))

    @staticmethod
    def trace_extras(prepared: Prepared, out: "ForwardOutput") -> dict[str, Any]:
        """What a trace carries besides states and patterns: the adapter's own (images, waveforms), the experts'
        choice per layer (None for a dense MLP), a relative position bias (T5, MPNet), and the parts a head combines
        into its logits (DeiT's cls_logits and distillation_logits), when there are any."""
        extras = dict(prepared.extras)
        extras.update(out.extras.get("head_outputs", {}))
        if out.router:
            extras["router"] = tuple(out.router)
        if "position_bias" in out.extras:
            extras["position_bias"] = out.extras["position_bias"]
        return extras


class TextInputs(InputAdapter):
    """A string, a list of strings, sentence pairs, or token ids."""
    accepts = ("texts", "input_ids", "attention_mask", "max_length")

    def prepare(self, model: "WorkbenchModel", texts=None, input_ids=None, attention_mask=None,
                max_length: int | None = None) -> Prepared:
        if input_ids is not None:
            input_ids, mask = check_token_ids(input_ids, attention_mask, model.config.vocab_size,
                                              model.config.max_positions)
            tokenizer = model.tokenizer
            tokens = [[tokenizer.id_to_token(i) if tokenizer else str(int(i)) for i in row[: int(m.sum())]]
                      for row, m in zip(input_ids, mask)]
            return Prepared(inputs={"input_ids": input_ids, "attention_mask": mask}, tokens=tokens)
        if texts is None:
            raise InputError("No input: pass text (a string, a list of strings, or sentence pairs).")
        enc = model.encode(texts, max_length)
        return Prepared(inputs={"input_ids": enc.input_ids, "attention_mask": enc.attention_mask,
                                "token_type_ids": enc.token_type_ids},
                        tokens=enc.tokens, texts=as_batch(texts), warnings=enc.warnings)

    def generate(self, model: "WorkbenchModel", text: str, max_new_tokens: int = 20) -> list[int]:
        """The ids of the new tokens of a greedy continuation of `text`."""
        return decode_text(model, model.encode(text).input_ids, max_new_tokens, capture=False)[0]


def as_batch(given: Any) -> list:
    """One text (a string or a sentence pair) or a list of them -> a list."""
    return [given] if isinstance(given, (str, tuple)) else list(given)


def _source_name(source: Any, kind: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else kind


def _batch(given: Any, kind: str, model: "WorkbenchModel") -> list:
    if given is None:
        raise InputError(f"No input: pass {kind}=[...] to {model.display_name}.")
    batch = list(given) if isinstance(given, (list, tuple)) else [given]
    if not batch:
        raise InputError(f"No {'images' if kind == 'images' else 'audio'} given.")
    return batch


class ImageInputs(InputAdapter):
    """ViT-type: the leading special tokens ([CLS]; DeiT's [CLS] and [DIST]) then patches in row-major order over
    the grid. The embedding's `special_tokens` names the leading positions (one [CLS] when it says nothing);
    `extras["first_patch"]` is how many there are, which every patch map reads instead of assuming one."""
    modality = "image"
    accepts = ("images",)

    def prepare(self, model: "WorkbenchModel", images=None) -> Prepared:
        batch = _batch(images, "images", model)
        loaded = [load_image(image) for image in batch]
        pixel_values = model.processor(loaded)  # (B, 3, H, W)
        embed = model.network.embed
        rows, cols = embed.grid
        special = list(getattr(embed, "special_tokens", ("[CLS]",)))
        labels = special + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
        sources = [_source_name(s, "image") for s in batch]
        return Prepared(
            inputs={"pixel_values": pixel_values}, tokens=[list(labels) for _ in loaded], texts=sources,
            extras={"images": loaded, "grid": (rows, cols), "first_patch": len(special), "patch_size": embed.patch_size,
                    "pixel_values": pixel_values, "sources": sources})


class FrameAudioInputs(InputAdapter):
    """Wav2Vec2-type: one position per feature-encoder frame (20 ms in the base configuration)."""
    modality = "audio"
    accepts = ("audio", "sampling_rate")

    def prepare(self, model: "WorkbenchModel", audio=None, sampling_rate: int | None = None) -> Prepared:
        batch = _batch(audio, "audio", model)
        rate = model.processor.sampling_rate
        waves = [load_audio(a, rate, sampling_rate, max_seconds=MAX_ENCODER_SECONDS,
                            what=f"Audio file {a}" if isinstance(a, (str, Path)) else None) for a in batch]
        values, sample_mask = model.processor(waves)  # (B, N), (B, N)
        embed = model.network.embed
        hop = embed.frame_seconds(rate)
        total = int(embed.output_lengths(torch.tensor(values.shape[1])))
        use_mask = model.processor.return_attention_mask
        frames = embed.output_lengths(sample_mask.sum(-1)) if use_mask else torch.full((len(waves),), total)
        if total <= 0 or int(frames.min()) <= 0:
            seconds = min(len(w) for w in waves) / rate
            raise InputError(f"The audio is {seconds * 1000:.0f} ms long: too short for the model's feature encoder "
                             "(it needs at least 25 ms).")
        sources = [_source_name(s, "audio") for s in batch]
        return Prepared(
            inputs={"input_values": values, "attention_mask": sample_mask if use_mask else None},
            tokens=[[f"{round(t * hop, 5):g}s" for t in range(int(n))] for n in frames], texts=sources,
            extras={"waveforms": waves, "sampling_rate": rate, "seconds_per_position": hop,
                    "input_values": values, "sources": sources})


def load_waves(model: "WorkbenchModel", audio: Sequence[Any], sampling_rate: int | None, max_seconds: float,
               what: str) -> list:
    """Each clip as a mono waveform at the model's rate, with a message naming the model when it is bad."""
    rate = model.processor.sampling_rate
    return [load_audio(a, rate, sampling_rate, max_seconds=max_seconds,
                       what=f"Audio for {what} ({a})" if isinstance(a, (str, Path)) else f"The audio for {what}")
            for a in audio]


TEXT_INPUTS = TextInputs()
IMAGE_INPUTS = ImageInputs()
FRAME_AUDIO_INPUTS = FrameAudioInputs()
