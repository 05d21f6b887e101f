"""The committed `vit-digits` checkpoint loads offline and scores what its model card says.

Loads `models/embedded/vit-digits/` with transformers' own classes (the reference), so this test
does not depend on the workbench's loader. The preprocessing mirrors
`scripts/train_vit_digits.py`: 8x8 digit (0..16) -> uint8 -> grayscale PIL -> RGB ->
`ViTImageProcessor` from the folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from PIL import Image  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

MODEL_DIR = Path(__file__).resolve().parents[2] / "models" / "embedded" / "vit-digits"
N_TRAIN = 1438  # indices >= 1438 are the held-out test split
TOLERANCE_PP = 0.5  # percentage points below the model card's figure that still pass


def card_accuracy() -> float:
    """The held-out accuracy stated in the model card, in percent."""
    text = (MODEL_DIR / "README.md").read_text()
    match = re.search(r"Held-out accuracy: ([0-9]+(?:\.[0-9]+)?)%", text)
    assert match, "model card must state 'Held-out accuracy: NN.NN%'"
    return float(match.group(1))


def digit_to_pil(digit: np.ndarray) -> Image.Image:
    u8 = np.clip(np.rint(digit.astype(np.float64) * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return Image.fromarray(u8, mode="L").convert("RGB")


@pytest.fixture(scope="module")
def checkpoint():
    if not (MODEL_DIR / "model.safetensors").exists():
        pytest.fail(f"missing committed checkpoint in {MODEL_DIR}; run scripts/train_vit_digits.py")
    model = transformers.ViTForImageClassification.from_pretrained(MODEL_DIR, local_files_only=True)
    processor = transformers.ViTImageProcessor.from_pretrained(MODEL_DIR, local_files_only=True)
    model.eval()
    return model, processor


def test_folder_contents_and_size() -> None:
    names = {p.name for p in MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= names
    assert "pytorch_model.bin" not in names
    assert (MODEL_DIR / "model.safetensors").stat().st_size < 1_000_000


def test_config_and_labels_as_documented(checkpoint) -> None:
    model, _ = checkpoint
    cfg = model.config
    assert cfg.model_type == "vit"
    assert cfg.architectures == ["ViTForImageClassification"]
    assert (cfg.image_size, cfg.patch_size, cfg.num_channels) == (32, 4, 3)
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (64, 4, 4, 128)
    assert cfg.num_labels == 10
    assert cfg.id2label == {i: str(i) for i in range(10)}
    assert cfg.label2id == {str(i): i for i in range(10)}
    # 64 patches + CLS
    assert model.vit.embeddings.position_embeddings.shape == (1, 65, 64)
    raw = json.loads((MODEL_DIR / "config.json").read_text())
    assert raw["id2label"] == {str(i): str(i) for i in range(10)}


def test_preprocessor_as_documented(checkpoint) -> None:
    _, processor = checkpoint
    assert isinstance(processor, transformers.ViTImageProcessor)
    assert processor.do_resize and processor.size == {"height": 32, "width": 32}
    assert int(processor.resample) == 2  # bilinear
    assert processor.do_rescale and processor.rescale_factor == pytest.approx(1 / 255)
    assert processor.do_normalize
    assert list(processor.image_mean) == [0.5, 0.5, 0.5]
    assert list(processor.image_std) == [0.5, 0.5, 0.5]


def test_held_out_accuracy_matches_model_card(checkpoint) -> None:
    model, processor = checkpoint
    digits = load_digits()
    images, targets = digits.images[N_TRAIN:], torch.tensor(digits.target[N_TRAIN:])
    assert len(images) == 359
    pixel_values = processor(images=[digit_to_pil(d) for d in images], return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (359, 3, 32, 32)
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits
    accuracy = 100.0 * (logits.argmax(-1) == targets).float().mean().item()
    stated = card_accuracy()
    assert accuracy >= stated - TOLERANCE_PP, f"held-out accuracy {accuracy:.2f}% < card {stated:.2f}% - {TOLERANCE_PP}"
    assert stated >= 90.0


def test_sample_digit_images_classified_as_their_label(checkpoint) -> None:
    """sample_data/images/digit_N.png, read by transformers' own processor and model, is N."""
    model, processor = checkpoint
    images_dir = MODEL_DIR.parents[2] / "sample_data" / "images"
    images = []
    for d in range(10):
        with Image.open(images_dir / f"digit_{d}.png") as im:
            images.append(im.convert("RGB"))
    with torch.no_grad():
        predicted = model(pixel_values=processor(images=images, return_tensors="pt")["pixel_values"]).logits.argmax(-1)
    assert predicted.tolist() == list(range(10))
