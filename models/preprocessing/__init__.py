"""Preprocessors: images and audio to the tensors a model reads, driven by `preprocessor_config.json`."""
from .audio import MAX_AUDIO_SECONDS, load_audio
from .image import MAX_IMAGE_PIXELS, ImageProcessor, load_image
from .wav2vec2_features import Wav2Vec2Features
from .whisper_features import WhisperFeatures

__all__ = ["load_image", "ImageProcessor", "MAX_IMAGE_PIXELS", "load_audio", "MAX_AUDIO_SECONDS",
           "WhisperFeatures", "Wav2Vec2Features"]
