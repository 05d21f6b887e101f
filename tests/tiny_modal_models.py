"""Tiny random ViT, Wav2Vec2 and Whisper checkpoints made by transformers inside the tests (no download).

Following transformers' own tests: 2 layers, 4 heads, hidden 32; biases and norms randomised so
parity sees every parameter. Each maker saves a complete folder (config, weights, preprocessor,
tokenizer where the family has one) and returns the transformers model (eager attention, eval).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from tests.tiny_models import save_tokenizer, word_tokenizer


def _randomise(model) -> None:
    model.config._attn_implementation = "eager"
    model.eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name.lower():
                p.add_(torch.randn_like(p) * 0.1)


def make_vit(folder: Path, kind: str = "vit-cls", seed: int = 0, **overrides):
    """kind: "vit" (ViTModel with pooler) or "vit-cls" (ViTForImageClassification, 3 labels)."""
    import transformers as tf
    torch.manual_seed(seed)
    params = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=37, hidden_act="gelu", qkv_bias=True)
    if kind == "vit-cls":
        params.update(id2label={0: "cat", 1: "dog", 2: "fish"}, label2id={"cat": 0, "dog": 1, "fish": 2})
    params.update(overrides)
    config = tf.ViTConfig(**params)
    model = tf.ViTForImageClassification(config) if kind == "vit-cls" else tf.ViTModel(config)
    _randomise(model)
    model.save_pretrained(folder)
    tf.ViTImageProcessor(size={"height": 16, "width": 16}, image_mean=[0.485, 0.456, 0.406],
                         image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return model


CTC_VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "a": 5, "b": 6, "c": 7, "d": 8, "e": 9, "t": 10, "s": 11}


def make_wav2vec2(folder: Path, kind: str = "ctc", stable: bool = False, seed: int = 0, **overrides):
    """kind: "base" (Wav2Vec2Model), "ctc" (Wav2Vec2ForCTC) or "cls" (audio classification, 2 labels)."""
    import transformers as tf
    torch.manual_seed(seed)
    params = dict(vocab_size=len(CTC_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=37, conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                  conv_bias=stable, feat_extract_norm="layer" if stable else "group", do_stable_layer_norm=stable,
                  num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, classifier_proj_size=8,
                  pad_token_id=0, hidden_act="gelu")
    if kind == "cls":
        params.update(id2label={0: "no", 1: "yes"}, label2id={"no": 0, "yes": 1})
    params.update(overrides)
    config = tf.Wav2Vec2Config(**params)
    cls = {"base": tf.Wav2Vec2Model, "ctc": tf.Wav2Vec2ForCTC, "cls": tf.Wav2Vec2ForSequenceClassification}[kind]
    model = cls(config)
    _randomise(model)
    model.save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                return_attention_mask=stable).save_pretrained(folder)
    (Path(folder) / "vocab.json").write_text(json.dumps(CTC_VOCAB))
    (Path(folder) / "tokenizer_config.json").write_text(json.dumps(
        {"pad_token": "<pad>", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
         "word_delimiter_token": "|", "tokenizer_class": "Wav2Vec2CTCTokenizer"}))
    return model


WHISPER_SPECIAL = ["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]


def make_whisper(folder: Path, seed: int = 0, **overrides):
    """WhisperForConditionalGeneration: 2+2 layers, 4 heads, d 32, 16 mel bins, a 64-token word vocabulary."""
    import transformers as tf
    torch.manual_seed(seed)
    tokenizer = word_tokenizer(WHISPER_SPECIAL, None)
    vocab = tokenizer.get_vocab_size()
    params = dict(vocab_size=64, num_mel_bins=16, d_model=32, encoder_layers=2, decoder_layers=2,
                  encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37,
                  max_source_positions=1500, max_target_positions=48, pad_token_id=0, bos_token_id=0, eos_token_id=0,
                  decoder_start_token_id=1, begin_suppress_tokens=None, suppress_tokens=None)
    params.update(overrides)
    assert vocab <= params["vocab_size"]
    config = tf.WhisperConfig(**params)
    model = tf.WhisperForConditionalGeneration(config)
    _randomise(model)
    model.generation_config = tf.GenerationConfig(
        decoder_start_token_id=1, eos_token_id=0, pad_token_id=0, bos_token_id=0, no_timestamps_token_id=2,
        max_length=24, suppress_tokens=[5, 6], begin_suppress_tokens=[0], is_multilingual=False)
    model.save_pretrained(folder)
    tf.WhisperFeatureExtractor(feature_size=16).save_pretrained(folder)
    save_tokenizer(tokenizer, Path(folder), {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
                                             "pad_token": "<|endoftext|>", "unk_token": "[UNK]"})
    return model


def noise_clip(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """A deterministic pseudo-speech waveform: a few tones with an envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * f * t) * a for f, a in ((220, 0.3), (440, 0.2), (1250, 0.1)))
    wave = wave * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(len(t))
    return wave.astype(np.float32)
