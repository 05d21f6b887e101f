"""HuBERT (Hsu et al. 2021, "HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of
Hidden Units").

The network is Wav2Vec2's (models/families/wav2vec2.py): the convolutional feature encoder with
group or layer norm, a linear projection, a grouped convolution for positions, and a post-norm
("base") or pre-norm ("stable layer norm") encoder; only pretraining differs (masked prediction of
clustered targets instead of a contrastive loss). Two config switches change the forward:
`feat_proj_layer_norm` (a LayerNorm before the projection, on by default) and `conv_pos_batch_norm`
(a BatchNorm before the positional convolution, which is then not weight-normalised). Both are
mapped. Heads: HubertForCTC and HubertForSequenceClassification, as Wav2Vec2's.
"""
from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from ..ctc_tokenizer import CTCTokenizer
from ..inputs import FRAME_AUDIO_INPUTS
from ..preprocessing.wav2vec2_features import Wav2Vec2Features
from ..transformer import TransformerModel
from .base import Family, StateDict, register
from .wav2vec2 import READ_KEYS as WAV2VEC2_READ_KEYS, IGNORED_KEYS as WAV2VEC2_IGNORED_KEYS
from .wav2vec2 import build_frame_encoder, frame_encoder_config, frame_encoder_converters, frame_encoder_heads

# config keys transformers' modeling code reads: Wav2Vec2's (shared modeling code, mapped and refused there) and
# HuBERT's two embedding switches, mapped through _layout
IGNORED_KEYS = WAV2VEC2_IGNORED_KEYS
READ_KEYS = WAV2VEC2_READ_KEYS + ("feat_proj_layer_norm", "conv_pos_batch_norm")


def _layout(cfg: ModelConfig) -> dict[str, bool]:
    """AudioFrameEmbeddings' switches for this checkpoint (transformers' defaults when the keys are absent)."""
    hf = cfg.hf_config
    return {"projection_norm": bool(hf.get("feat_proj_layer_norm", True)),
            "position_batch_norm": bool(hf.get("conv_pos_batch_norm", False))}


def _config(hf: dict[str, Any]) -> ModelConfig:
    return frame_encoder_config(hf, "hubert", "HuBERT")


def _build(cfg: ModelConfig) -> TransformerModel:
    return build_frame_encoder(cfg, **_layout(cfg))


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return frame_encoder_converters(**_layout(cfg))[0](sd, cfg)


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return frame_encoder_converters(**_layout(cfg))[1](sd, cfg)


HUBERT = register(Family(
    name="hubert", model_types=("hubert",), config_from_hf=_config,
    build=_build, state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "hubert.",
    base_architecture=lambda cfg: "HubertModel", modality="audio", inputs=FRAME_AUDIO_INPUTS,
    tokenizer=CTCTokenizer.from_folder, processor=lambda folder, cfg: Wav2Vec2Features.from_folder(folder),
    heads=frame_encoder_heads("Hubert"),
))
