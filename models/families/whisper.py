"""Whisper (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision").

An encoder-decoder. The encoder reads a 30 s log-mel spectrogram: two 1-D convolutions (the
second with stride 2, so one position per 20 ms), fixed sinusoidal positions, pre-norm blocks and
a final LayerNorm. The decoder is a pre-norm causal transformer whose every block also attends to
the encoder output (cross-attention), with learned positions and the token embedding tied to the
output projection. Attention modules are the shared `Attention`, so masking, pruning and hook
points work as in every other family.

The network is the shared `EncoderDecoder` of two `TransformerModel`s; only the embeddings, the
config mapping, the converters and the input adapter (transcribe, then trace) are Whisper's.
Head keys: the trace's `attentions` and `tokens` are the decoder's, so an integer layer means a
decoder self-attention layer (as on text models); the encoder's and the cross-attention's heads
are ("encoder", i) and ("cross", i), or "encoder.{i}" and "cross.{i}".
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, hf_config_with_stacked_pruned_heads, stacked_pruned_heads_from_hf
from ..deferred_patterns import collect
from ..embeddings import LearnedPositionEmbeddings
from ..encoder_decoder import EncoderDecoder, Seq2SeqOutput
from ..errors import InputError
from ..generation import greedy_decode
from ..heads import causal_lm_head
from ..inputs import InputAdapter, Prepared, load_waves
from ..preprocessing.whisper_features import WhisperFeatures
from ..tokenization import TextTokenizer
from ..trace import Trace
from ..transformer import ForwardOutput, TransformerModel
from .base import Family, StateDict, refuse_unsupported, register, rename

FRAMES_PER_POSITION = 2            # conv2 has stride 2: one encoder position per two 10 ms mel frames
SECONDS_PER_POSITION = 0.02
MAX_SECONDS = 30.0                 # the encoder reads one 30 s window
# files a Whisper folder carries besides weights and config, copied as they are on save
AUX_FILES = ("generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
             "vocab.json", "merges.txt", "normalizer.json", "added_tokens.json")


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed encoder positions (length, channels): sines then cosines."""
    increment = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2))  # (channels / 2,)
    scaled = torch.arange(length)[:, None] * inv[None, :]  # (length, channels / 2)
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


class AudioConvEmbeddings(nn.Module):
    """log-mel (B, n_mels, 3000) -> (B, 1500, d): conv, GELU, strided conv, GELU, plus positions."""

    def __init__(self, n_mels: int, d_model: int, n_positions: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.position = nn.Parameter(sinusoids(n_positions, d_model), requires_grad=False)

    def embed_signal(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None):
        expected = self.position.shape[0] * FRAMES_PER_POSITION
        if input_features.shape[-1] != expected or input_features.shape[1] != self.conv1.in_channels:
            raise InputError(f"Whisper's encoder reads ({self.conv1.in_channels}, {expected}) log-mel features "
                             f"(30 s); got {tuple(input_features.shape[1:])}. Use the model's feature extractor.")
        x = F.gelu(self.conv1(input_features.to(self.conv1.weight.dtype)))  # (B, d, 3000)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, 1500, d)
        x = x + self.position[: x.shape[1]]
        return x, torch.ones(x.shape[:2], dtype=torch.long, device=x.device)


def encoder_config(cfg: ModelConfig) -> ModelConfig:
    """The encoder's one-stack view of a Whisper config (heads keyed ("encoder", layer))."""
    hf = cfg.hf_config
    n_heads = hf["encoder_attention_heads"]
    return ModelConfig(
        family="whisper", n_layers=hf["encoder_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=cfg.d_model,
        d_head=cfg.d_model // n_heads, d_mlp=hf["encoder_ffn_dim"], vocab_size=0,
        max_positions=hf.get("max_source_positions", 1500), norm_eps=cfg.norm_eps, activation=cfg.activation,
        pruned_heads={k: v for k, v in cfg.pruned_heads.items() if k[0] == "encoder"}, hf_config=hf)


# config keys transformers' modeling code reads that change the arithmetic, each mapped or refused below.
# scale_embedding is read into an `embed_scale` that transformers' Whisper never applies, so it changes nothing.
# SpecAugment and layer drop act in training only; hidden_size, n_positions and num_hidden_layers are aliases of
# d_model, max_target_positions and encoder_layers; median_filter_width smooths word timestamps, not a forward
IGNORED_KEYS = ("apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks", "mask_feature_prob",
                "mask_feature_length", "mask_feature_min_masks", "encoder_layerdrop", "decoder_layerdrop", "id2label",
                "hidden_size", "n_positions", "num_hidden_layers", "median_filter_width")
READ_KEYS = ("activation_function", "d_model", "decoder_attention_heads", "decoder_ffn_dim", "decoder_layers",
             "decoder_start_token_id", "encoder_attention_heads", "encoder_ffn_dim", "encoder_layers",
             "max_source_positions", "max_target_positions", "num_mel_bins", "pad_token_id", "vocab_size",
             "scale_embedding", "is_encoder_decoder", "use_weighted_layer_sum", "classifier_proj_size")


def _config(hf: dict[str, Any]) -> ModelConfig:
    refuse_unsupported(hf, "Whisper", activation_function=lambda v: v in ACTIVATIONS,
                       use_weighted_layer_sum=lambda v: not v)
    n_heads = hf["decoder_attention_heads"]
    pruned = stacked_pruned_heads_from_hf(hf, "decoder")
    return ModelConfig(
        family="whisper", n_layers=hf["decoder_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=hf["d_model"],
        d_head=hf["d_model"] // n_heads, d_mlp=hf["decoder_ffn_dim"], vocab_size=hf["vocab_size"],
        max_positions=hf.get("max_target_positions", 448), norm_eps=1e-5,
        activation=hf.get("activation_function", "gelu"), causal=True, pad_token_id=hf.get("pad_token_id"),
        bos_token_id=hf.get("decoder_start_token_id"), eos_token_id=hf.get("eos_token_id"), tie_word_embeddings=True,
        pruned_heads=pruned, other_stacks={"encoder": (hf["encoder_layers"], hf["encoder_attention_heads"]),
                                           "cross": (hf["decoder_layers"], n_heads)},
        hf_config=dict(hf))




def _build(cfg: ModelConfig) -> EncoderDecoder:
    hf = cfg.hf_config
    audio = AudioConvEmbeddings(hf.get("num_mel_bins", 80), cfg.d_model, hf.get("max_source_positions", 1500))
    encoder = TransformerModel(encoder_config(cfg), audio, norm_kind="layer", norm_first=True, gated_mlp=False,
                               uses_rotary=False, final_norm=True, stack="encoder")
    decoder = TransformerModel(cfg, LearnedPositionEmbeddings(cfg), norm_kind="layer", norm_first=True,
                               gated_mlp=False, uses_rotary=False, final_norm=True, stack="decoder", cross_stack="cross")
    return EncoderDecoder(cfg, encoder, decoder, encoder_config)


def _attn_pairs(hf: str, ours: str) -> list[tuple[str, str]]:
    pairs = [(f"{hf}q_proj.weight", f"{ours}q_proj.weight"), (f"{hf}q_proj.bias", f"{ours}q_proj.bias"),
             (f"{hf}k_proj.weight", f"{ours}k_proj.weight"),
             (f"{hf}v_proj.weight", f"{ours}v_proj.weight"), (f"{hf}v_proj.bias", f"{ours}v_proj.bias"),
             (f"{hf}out_proj.weight", f"{ours}o_proj.weight"), (f"{hf}out_proj.bias", f"{ours}o_proj.bias")]
    return pairs


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF name under `model.`, our name) for every Whisper weight; key biases are handled apart."""
    hf = cfg.hf_config
    pairs = [("encoder.conv1.weight", "encoder.embed.conv1.weight"), ("encoder.conv1.bias", "encoder.embed.conv1.bias"),
             ("encoder.conv2.weight", "encoder.embed.conv2.weight"), ("encoder.conv2.bias", "encoder.embed.conv2.bias"),
             ("encoder.layer_norm.weight", "encoder.final_norm.weight"), ("encoder.layer_norm.bias", "encoder.final_norm.bias"),
             ("decoder.embed_tokens.weight", "decoder.embed.word.weight"),
             ("decoder.embed_positions.weight", "decoder.embed.position.weight"),
             ("decoder.layer_norm.weight", "decoder.final_norm.weight"), ("decoder.layer_norm.bias", "decoder.final_norm.bias")]
    for i in range(hf["encoder_layers"]):
        h, o = f"encoder.layers.{i}.", f"encoder.blocks.{i}."
        pairs += _attn_pairs(f"{h}self_attn.", f"{o}attn.")
        for p in ("weight", "bias"):
            pairs += [(f"{h}self_attn_layer_norm.{p}", f"{o}ln1.{p}"), (f"{h}final_layer_norm.{p}", f"{o}ln2.{p}"),
                      (f"{h}fc1.{p}", f"{o}mlp.fc_in.{p}"), (f"{h}fc2.{p}", f"{o}mlp.fc_out.{p}")]
    for i in range(hf["decoder_layers"]):
        h, o = f"decoder.layers.{i}.", f"decoder.blocks.{i}."
        pairs += _attn_pairs(f"{h}self_attn.", f"{o}attn.")
        pairs += _attn_pairs(f"{h}encoder_attn.", f"{o}cross_attn.")
        for p in ("weight", "bias"):
            pairs += [(f"{h}self_attn_layer_norm.{p}", f"{o}ln1.{p}"), (f"{h}encoder_attn_layer_norm.{p}", f"{o}ln_cross.{p}"),
                      (f"{h}final_layer_norm.{p}", f"{o}ln2.{p}"),
                      (f"{h}fc1.{p}", f"{o}mlp.fc_in.{p}"), (f"{h}fc2.{p}", f"{o}mlp.fc_out.{p}")]
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    ours = rename(sd, _pairs(cfg))
    hf = cfg.hf_config
    # Whisper's key projections have no bias; a zero bias is exact (it shifts every score of a query equally)
    for name, weight in list(ours.items()):
        if name.endswith("k_proj.weight"):
            ours[name[: -len("weight")] + "bias"] = weight.new_zeros(weight.shape[0])
    if "encoder.embed_positions.weight" in sd:
        ours["encoder.embed.position"] = sd["encoder.embed_positions.weight"]
    else:
        ours["encoder.embed.position"] = sinusoids(hf.get("max_source_positions", 1500), cfg.d_model)
    return ours


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(o, h) for h, o in _pairs(cfg)])
    out["encoder.embed_positions.weight"] = sd["encoder.embed.position"]
    return out


class SpeechToTextInputs(InputAdapter):
    """Audio in, a transcript out: `run(audio=[...])` transcribes greedily (step by step, keys and values cached),
    then runs the decoder once more over the whole transcript with capture on, so the trace holds every pattern
    of the tokens it produced; `run(audio=[...], texts=["a transcript"])` scores given transcripts instead."""
    modality = "audio"
    accepts = ("audio", "sampling_rate", "texts", "max_new_tokens")

    def features(self, model, audio, sampling_rate: int | None) -> tuple[torch.Tensor, list]:
        """input_features (B, n_mels, 3000) and the waveforms at 16 kHz."""
        if audio is None:
            raise InputError("No input: pass audio=[waveform or file] (and sampling_rate= for arrays) to Whisper.")
        batch = list(audio) if isinstance(audio, (list, tuple)) else [audio]
        if not batch:
            raise InputError("No audio given.")
        waves = load_waves(model, batch, sampling_rate, MAX_SECONDS, "Whisper")
        return model.processor(waves), waves

    def prepare(self, model, audio=None, sampling_rate: int | None = None, texts=None,
                max_new_tokens: int | None = None) -> Prepared:
        """The encoder's input (log-mel features) and the waveforms, without transcribing."""
        features, waves = self.features(model, audio, sampling_rate)
        return Prepared(inputs={"input_features": features}, tokens=[], extras={"waveforms": waves})

    def prompt_ids(self, model) -> list[int]:
        """<|startoftranscript|> [language, task] <|notimestamps|>, as transformers' generate builds them."""
        g = model.generation_config
        ids = [g.get("decoder_start_token_id", model.config.bos_token_id)]
        if g.get("is_multilingual"):
            ids += [g["lang_to_id"]["<|en|>"], g["task_to_id"]["transcribe"]]
        if g.get("no_timestamps_token_id") is not None:
            ids.append(g["no_timestamps_token_id"])
        return ids

    def greedy(self, model, encoder_out: ForwardOutput, max_new_tokens: int | None) -> list[list[int]]:
        """Each clip's prompt, new tokens and end token (if reached), decoded greedily with the shared loop."""
        g = model.generation_config
        prompt = self.prompt_ids(model)
        limit = g.get("max_length", model.config.max_positions) - len(prompt)
        steps = limit if max_new_tokens is None else min(max_new_tokens, limit)
        cache: list[dict[str, torch.Tensor]] = [{} for _ in model.network.decoder.blocks]

        def step(ids: torch.Tensor):
            out = model.forward(decoder_input_ids=ids, encoder_out=encoder_out, cache=cache, capture=False)
            return out.decoder.logits[:, -1], None

        B = encoder_out.final.shape[0]
        new, _, _ = greedy_decode(step, torch.tensor([prompt] * B), steps, model.config.eos_token_id,
                                  suppress=g.get("suppress_tokens") or (),
                                  begin_suppress=g.get("begin_suppress_tokens") or ())
        return [prompt + tokens for tokens in new]

    def encode(self, model, features: torch.Tensor, capture: bool | str) -> ForwardOutput:
        return model.network.encode(model.active_scales(), capture, input_features=features)

    def generate(self, model, audio=None, sampling_rate: int | None = None,
                 max_new_tokens: int | None = None) -> list[list[int]]:
        """New token ids per clip (without the prompt, with the end token if reached)."""
        features, _ = self.features(model, audio, sampling_rate)
        prompt = len(self.prompt_ids(model))
        return [seq[prompt:] for seq in self.greedy(model, self.encode(model, features, False), max_new_tokens)]

    def run(self, model, capture: bool | str, audio=None, sampling_rate: int | None = None, texts=None,
            max_new_tokens: int | None = None) -> Trace:
        features, waves = self.features(model, audio, sampling_rate)
        encoder_out = self.encode(model, features, capture)
        prompt = self.prompt_ids(model)
        if texts is not None:
            given = [texts] if isinstance(texts, str) else list(texts)
            if len(given) != len(waves):
                raise InputError(f"Give one transcript per clip: {len(waves)} clips, {len(given)} transcripts.")
            sequences = [prompt + model.tokenizer.backend.encode(t, add_special_tokens=False).ids
                         + [model.config.eos_token_id] for t in given]
        else:
            sequences = self.greedy(model, encoder_out, max_new_tokens)
        T = max(len(s) for s in sequences)
        if T > model.config.max_positions:
            raise InputError(f"Whisper's decoder reads at most {model.config.max_positions} tokens; a transcript "
                             f"here has {T}. Give a shorter one.")
        pad = model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id
        ids = torch.tensor([s + [pad] * (T - len(s)) for s in sequences])  # (B, T)
        mask = torch.tensor([[1] * len(s) + [0] * (T - len(s)) for s in sequences])  # (B, T)
        out = model.forward(decoder_input_ids=ids, decoder_attention_mask=mask, capture=capture, encoder_out=encoder_out)
        return self.trace_of(model, out, ids, mask, sequences, len(prompt), features, waves, audio)

    def trace_of(self, model, out: Seq2SeqOutput, ids, mask, sequences, prompt: int, features, waves, audio) -> Trace:
        dec, enc = out.decoder, out.encoder
        hidden = list(dec.resid)
        hidden[-1] = dec.final
        enc_hidden = list(enc.resid)
        enc_hidden[-1] = enc.final
        decoder_patterns = collect(dec.attentions)  # one object: `attentions` and `decoder_attentions` share it
        sources = [str(a) if isinstance(a, (str, Path)) else "audio" for a in
                   (audio if isinstance(audio, (list, tuple)) else [audio])]
        extras = {
            "encoder_attentions": collect(enc.attentions), "encoder_hidden_states": tuple(enc_hidden),
            "cross_attentions": collect(dec.cross_attentions), "decoder_attentions": decoder_patterns,
            "transcripts": [model.decode(s[prompt:]) for s in sequences], "prompt_length": prompt,
            "waveforms": waves, "sampling_rate": model.processor.sampling_rate, "input_features": features,
            "seconds_per_position": SECONDS_PER_POSITION,
            # encoder positions that hold audio; the rest of the 30 s window is padding silence
            "audio_positions": [min(math.ceil(len(w) / (model.processor.hop_length * FRAMES_PER_POSITION)),
                                    enc.final.shape[1]) for w in waves],
            "sources": sources,
        }
        tokens = [[model.tokenizer.decode([i]) for i in s] for s in sequences]
        return Trace(tokens=tokens, input_ids=ids, attention_mask=mask, hidden_states=tuple(hidden),
                     attentions=decoder_patterns, resid_final=dec.resid_final, logits=dec.logits,
                     head_ids=model.head_ids(), texts=sources, model_name=model.name, modality="audio", extras=extras)


WHISPER = register(Family(
    name="whisper", model_types=("whisper",), config_from_hf=_config, build=_build,
    config_to_hf=hf_config_with_stacked_pruned_heads,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "WhisperForConditionalGeneration",
    heads={"automatic-speech-recognition": causal_lm_head("WhisperForConditionalGeneration", "proj_out.weight")},
    architectures={"WhisperModel": "automatic-speech-recognition"}, fixed_task=True,
    default_task="automatic-speech-recognition", modality="audio", inputs=SpeechToTextInputs(),
    tokenizer=lambda folder: TextTokenizer.from_folder(folder),
    processor=lambda folder, cfg: WhisperFeatures.from_folder(folder), extra_files=AUX_FILES,
))
