"""`attribute_audio`: the tensor methods wired to the core's audio models, over time.

Whisper: attributions on the log-mel input features of the clip (10 ms frames), from the
features of silence; the rest of Whisper's 30 s window stays as it is. The outputs explained
are the log-probabilities of the model's own transcript under teacher forcing: output 0 is the
whole transcript (their sum), output j its j-th token. Rollout and attention x gradient run
through the encoder's self-attention and are read through the decoder's cross-attention to the
explained tokens (a simplified form of Chefer et al. 2021's encoder-decoder rule).

Audio classifiers (Wav2Vec2 with a classification head): attributions on the waveform, grouped
into the model's frames (20 ms), from silence; the head mean-pools every frame, so the attention
methods average the rows of all frames.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from models.errors import InputError

from .attention_grads import named_patterns_and_gradients, patterns_and_gradients
from .result import AttributionReport, Progress, Target, no_progress
from .tensor import attribute_tensor
from .tensor_methods import AttentionMap, TensorInput

# gradient methods and occlusion are quick on a clip; integrated gradients runs the whole encoder per step
AUDIO_DEFAULT_METHODS = ("saliency", "input_x_gradient", "occlusion", "attention_rollout")
WHISPER_BATCH = 4            # a Whisper encoder pass covers 1,500 positions: few at a time
FRAMES_PER_POSITION = 2      # Whisper's second convolution has stride 2


def attribute_audio(model, audio: Any, sampling_rate: int | None = None,
                    methods: Sequence[str] = AUDIO_DEFAULT_METHODS, target: int | str | None = None,
                    params: dict[str, dict[str, Any]] | None = None, progress: Progress = no_progress) -> AttributionReport:
    """Explain an audio model's decision on one clip (waveform array with `sampling_rate`, or a file path)."""
    if model.modality != "audio":
        raise InputError(f"{model.name or 'This model'} does not read audio.")
    if model.is_encoder_decoder:  # Whisper: explain its own transcript
        return _whisper(model, audio, sampling_rate, methods, target, params, progress)
    if model.task == "audio-classification":
        return _classifier(model, audio, sampling_rate, methods, target, params, progress)
    raise InputError(f"{model.name or 'This model'} has {'no task head' if model.task is None else f'a {model.task} head'}: "
                     "attribution explains Whisper transcripts and audio classifiers.")


def _whisper(model, audio, sampling_rate, methods, target, params, progress) -> AttributionReport:
    trace = model.run(audio=[audio], sampling_rate=sampling_rate, capture=False)
    features = trace.extras["input_features"].detach()  # (1, F, 3000)
    wave = np.asarray(trace.extras["waveforms"][0], dtype=np.float32)
    rate = trace.extras["sampling_rate"]
    hop = model.processor.hop_length
    n = min(features.shape[-1], max(1, math.ceil(len(wave) / hop)))  # frames that hold the clip
    silence = model.processor([np.zeros_like(wave)]).detach()[..., :n]  # (1, F, n)
    rest = features[..., n:]  # (1, F, 3000 - n): the padding of the window, the same in every run
    ids = trace.input_ids  # (1, T): prompt, transcript, end token
    prompt = trace.extras["prompt_length"]
    T = ids.shape[1]
    if T <= prompt:
        raise InputError("Whisper produced no token for this clip, so there is nothing to explain.")
    pieces = [model.tokenizer.decode([int(i)]) or "<end>" for i in ids[0, prompt:]]
    labels = {0: f"whole transcript: {trace.extras['transcripts'][0].strip()}"}
    labels.update({j + 1: f"token {j + 1}: {p.strip() or p}" for j, p in enumerate(pieces)})

    def run(x: torch.Tensor, capture: bool):
        B = x.shape[0]
        full = torch.cat([x, rest.expand(B, -1, -1)], dim=-1)  # (B, F, 3000)
        out = model.forward(input_features=full, decoder_input_ids=ids.expand(B, -1), capture=capture)
        logp = out.decoder.logits.float().log_softmax(-1)  # (B, T, vocab)
        # the token at t is predicted at t - 1 (teacher forcing on the model's own transcript)
        tokens = logp[:, prompt - 1: T - 1].gather(-1, ids[:, prompt:].expand(B, -1)[..., None])[..., 0]  # (B, n_gen)
        return torch.cat([tokens.sum(1, keepdim=True), tokens], dim=1)  # (B, 1 + n_gen)

    encoder_names = [n_ for n_ in model.hook_points if n_.startswith("encoder.") and n_.endswith("attn.hook_pattern")]
    cross_names = [n_ for n_ in model.hook_points if n_.endswith("cross_attn.hook_pattern")]
    state: dict[str, torch.Tensor] = {}

    def read(x: torch.Tensor, chosen: Target, with_gradients: bool):
        found = named_patterns_and_gradients(model, lambda: run(x, True)[0, chosen.index],
                                             encoder_names + cross_names, with_gradients)
        # decoder rows that produce the explained output: every generated token, or the chosen one
        rows = list(range(prompt - 1, T - 1)) if chosen.index == 0 else [prompt - 2 + chosen.index]
        cross = []
        for name in cross_names:
            pattern, grad = found[name]  # (1, H, T, S)
            weight = (grad * pattern).clamp_min(0) if with_gradients else pattern
            cross.append(weight[0, :, rows].mean(dim=(0, 1)))  # (S,)
        state["weights"] = torch.stack(cross).mean(0)  # (S,)
        attentions = [found[n_][0] for n_ in encoder_names]
        gradients = [found[n_][1] for n_ in encoder_names] if with_gradients else None
        return attentions, gradients

    def to_units(row: torch.Tensor) -> torch.Tensor:  # (S,) encoder positions -> (n,) feature frames
        return row.repeat_interleave(FRAMES_PER_POSITION)[:n]

    attention = AttentionMap(read, None, to_units, reduce=lambda relevance: state["weights"] @ relevance)
    x = TensorInput(values=features[..., :n].clone(), baseline=silence, unit_dims=1, attention=attention,
                    batch_limit=WHISPER_BATCH)
    chosen = 0 if target is None else target  # the whole transcript, not the "most likely" output
    return attribute_tensor(lambda v: run(v, False), x, methods=methods, target=chosen, labels=labels, params=params,
                            modality="audio", model_name=model.name, progress=progress,
                            description=f"{trace.texts[0]}: “{trace.extras['transcripts'][0].strip()}”",
                            unit_seconds=hop / rate, extras={"waveform": wave, "sampling_rate": rate})


def _classifier(model, audio, sampling_rate, methods, target, params, progress) -> AttributionReport:
    prepared = model.prepare(audio=[audio], sampling_rate=sampling_rate)
    values = prepared.inputs["input_values"].detach()  # (1, N) normalised waveform
    mask = prepared.inputs.get("attention_mask")
    rate = prepared.extras["sampling_rate"]
    seconds = prepared.extras["seconds_per_position"]
    per_frame = max(1, round(seconds * rate))  # samples per model frame (320 at 16 kHz)
    N = values.shape[1]
    n = math.ceil(N / per_frame)
    framed = torch.nn.functional.pad(values, (0, n * per_frame - N)).reshape(1, n, per_frame).transpose(1, 2)  # (1, spf, n)

    def waveform(x: torch.Tensor) -> torch.Tensor:  # (B, spf, n) -> (B, N)
        return x.transpose(1, 2).reshape(x.shape[0], -1)[:, :N]

    def forward(x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        return model.forward(input_values=waveform(x), attention_mask=None if mask is None else mask.expand(B, -1),
                             capture=False).logits  # (B, n_classes)

    def read(x: torch.Tensor, chosen: Target, with_gradients: bool):
        run = lambda: model.forward(input_values=waveform(x), attention_mask=mask, capture=True).logits[0, chosen.index]
        return patterns_and_gradients(model, run, with_gradients=with_gradients)

    def to_units(row: torch.Tensor) -> torch.Tensor:  # (positions,) -> (n,): the last frames have no position
        return torch.nn.functional.pad(row, (0, max(0, n - row.shape[0])))[:n]

    x = TensorInput(values=framed, baseline=torch.zeros_like(framed), unit_dims=1,
                    attention=AttentionMap(read, None, to_units))
    wave = np.asarray(prepared.extras["waveforms"][0], dtype=np.float32)
    return attribute_tensor(forward, x, methods=methods, target=target, labels=model.labels, params=params,
                            modality="audio", model_name=model.name, progress=progress,
                            description=str(prepared.extras["sources"][0]), unit_seconds=per_frame / rate,
                            extras={"waveform": wave, "sampling_rate": rate})
