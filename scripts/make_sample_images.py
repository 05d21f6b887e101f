"""Write the sample images in sample_data/images/ from scikit-learn's bundled data.

- china.jpg, flower.jpg: sklearn.datasets.load_sample_image, at most 640 px wide,
  JPEG quality 85.
- digit_0.png .. digit_9.png: one 8x8 image per class from sklearn.datasets.load_digits,
  the first of its class in the last 20% of the dataset (indices >= 1438, the part the
  `vit-digits` model is tested on, never trained on).  Each goes through the first steps
  of that model's preprocessing (scripts/train_vit_digits.py, digit_to_pil, and the
  model's preprocessor_config.json): values 0..16 -> uint8 0..255 as round(v * 255 / 16)
  (white digit on black, as in the data), grayscale converted to RGB, resized to 32x32
  with Pillow's bilinear filter.  The PNG is therefore the image the model reads: its
  image processor's 32x32 resize leaves it unchanged, and rescale and normalise give
  exactly the tensor training gave for that digit (checked by tests/test_sample_data.py).
  (Earlier versions saved 64x64 nearest-neighbour upscales; resizing those to 32x32 is
  not the training preprocessing, and the model misread four of the ten.)
- digits.csv: file, label and dataset index of each digit PNG.

Usage:  python scripts/make_sample_images.py [--out sample_data/images]
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits, load_sample_image

ROOT = Path(__file__).resolve().parents[1]
MAX_WIDTH = 640
JPEG_QUALITY = 85
DIGIT_SIZE = 32         # vit-digits' input size (preprocessor_config.json)
HELD_OUT_START = 1438   # round(0.8 * 1797): first index of the held-out 20%


def save_photo(name: str, out: Path) -> Image.Image:
    img = Image.fromarray(load_sample_image(name))           # (H, W, 3) uint8
    if img.width > MAX_WIDTH:
        h = round(img.height * MAX_WIDTH / img.width)
        img = img.resize((MAX_WIDTH, h), Image.Resampling.LANCZOS)
    img.save(out / name, quality=JPEG_QUALITY)
    return img


def digit_to_rgb(digit: np.ndarray) -> Image.Image:
    """8x8 array, values 0..16 -> RGB image, uint8 0..255: as digit_to_pil in scripts/train_vit_digits.py."""
    u8 = np.clip(np.rint(np.asarray(digit, dtype=np.float64) * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return Image.fromarray(u8, mode="L").convert("RGB")


def save_digits(out: Path) -> list[tuple[str, int, int]]:
    digits = load_digits()
    assert HELD_OUT_START == round(0.8 * len(digits.target))
    rows = []
    for label in range(10):
        # first example of this class in the held-out part
        idx = HELD_OUT_START + int(np.flatnonzero(digits.target[HELD_OUT_START:] == label)[0])
        img = digit_to_rgb(digits.images[idx]).resize((DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.BILINEAR)
        name = f"digit_{label}.png"
        img.save(out / name)
        rows.append((name, label, idx))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "sample_data" / "images")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name in ("china.jpg", "flower.jpg"):
        img = save_photo(name, args.out)
        print(f"{name}  {img.width}x{img.height}")
    rows = save_digits(args.out)
    with open(args.out / "digits.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "label", "dataset_index"])
        w.writerows(rows)
    for name, label, idx in rows:
        print(f"{name}  label {label}  index {idx}")


if __name__ == "__main__":
    main()
