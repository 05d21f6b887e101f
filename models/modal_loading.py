"""Loading image and audio checkpoints (ViT, Wav2Vec2, Whisper) into the instrumented core.

Registers a loader per `model_type` in `models.loading.MODALITY_LOADERS`, and what each family
needs besides its network (tasks, preprocessor, input preparation) in `MODAL_FAMILIES`.
"""
from __future__ import annotations

from pathlib import Path

from .ctc_tokenizer import CTCTokenizer
from .errors import WeightFileError
from .families.vit import VIT, ViTPooler
from .families.wav2vec2 import WAV2VEC2
from .families.whisper import WHISPER
from .heads import head_format
from .loading import MODALITY_LOADERS, body_state, load_into_with_new_head, read_config
from .modal_family import MODAL_FAMILIES, ModalFamily, register_modal
from .modal_inputs import prepare_frame_audio, prepare_images
from .modal_model import ModalWorkbenchModel
from .preprocessing.image import ImageProcessor
from .preprocessing.wav2vec2_features import Wav2Vec2Features
from .preprocessing.whisper_features import WhisperFeatures
from .tokenization import TextTokenizer
from .weights import read_state_dict
from .whisper_model import WhisperWorkbenchModel

register_modal(("vit",), ModalFamily(
    family=VIT, modality="image", tasks={"ViTForImageClassification": "image-classification"},
    base_architecture="ViTModel",
    processor=lambda folder, cfg: ImageProcessor.from_folder(folder, default_size=cfg.hf_config.get("image_size", 224)),
    prepare=prepare_images, make_pooler=lambda cfg: ViTPooler(cfg.d_model)))
register_modal(("wav2vec2",), ModalFamily(
    family=WAV2VEC2, modality="audio",
    tasks={"Wav2Vec2ForCTC": "ctc", "Wav2Vec2ForSequenceClassification": "audio-classification"},
    base_architecture="Wav2Vec2Model", processor=lambda folder, cfg: Wav2Vec2Features.from_folder(folder),
    prepare=prepare_frame_audio, tokenizer=CTCTokenizer.from_folder))
register_modal(("whisper",), ModalFamily(
    family=WHISPER, modality="audio",
    tasks={"WhisperForConditionalGeneration": "automatic-speech-recognition", "WhisperModel": "automatic-speech-recognition"},
    base_architecture="WhisperForConditionalGeneration", processor=lambda folder, cfg: WhisperFeatures.from_folder(folder),
    prepare=prepare_frame_audio, tokenizer=lambda folder: TextTokenizer.from_folder(folder),
    model_class=WhisperWorkbenchModel))


def load_modal_folder(folder: Path, name: str, task: str | None = None):
    """Like `load_folder` for text, for a family in MODAL_FAMILIES; a head the checkpoint lacks starts untrained."""
    folder = Path(folder)
    hf = read_config(folder)
    spec = MODAL_FAMILIES[hf["model_type"]]
    family = spec.family
    cfg = family.config_from_hf(hf)
    network = family.build(cfg)
    checkpoint_task = next((spec.tasks[a] for a in hf.get("architectures") or [] if a in spec.tasks), None)
    builtin_head = spec.model_class is WhisperWorkbenchModel  # Whisper's output projection is its tied embedding
    task = checkpoint_task if builtin_head else (task or checkpoint_task)
    state = read_state_dict(folder)
    prefix = family.hf_prefix(cfg)
    body, rest = body_state(family, cfg, state, prefix, folder)
    if spec.make_pooler is not None and "pooler.dense.weight" in body:
        network.pooler = spec.make_pooler(cfg)
    labels = {int(k): v for k, v in hf.get("id2label", {}).items()}
    if task is not None and not builtin_head:
        fmt = head_format(task, cfg.family)
        network.head = fmt.build(cfg, max(len(labels), 2))
        for hf_name, ours in fmt.pairs:
            if hf_name in rest:
                body[f"head.{ours}"] = rest[hf_name]
            elif task == checkpoint_task:
                raise WeightFileError(f"{folder}: head weight {hf_name!r} is missing from the checkpoint.")
    load_into_with_new_head(network, body, str(folder), task != checkpoint_task)
    tokenizer = spec.tokenizer(folder) if spec.tokenizer else None
    model_class = spec.model_class or ModalWorkbenchModel
    return model_class(network, cfg, tokenizer, spec.processor(folder, cfg), spec, name=name, task=task,
                       labels=labels, source=str(folder))


for _model_type in MODAL_FAMILIES:
    MODALITY_LOADERS[_model_type] = load_modal_folder
