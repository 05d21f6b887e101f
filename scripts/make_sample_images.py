"""Write the sample images in sample_data/images/ from scikit-learn's bundled data.

- china.jpg, flower.jpg: sklearn.datasets.load_sample_image, at most 640 px wide,
  JPEG quality 85.
- digit_0.png .. digit_9.png: one 8x8 image per class from sklearn.datasets.load_digits,
  taken from the last 20% of the dataset (indices >= 1438, the part the ViT digits
  model is tested on, never trained on).  Values 0..16 are mapped to 0..255 (white
  digit on black, as in the data), upscaled to 64x64 with nearest neighbour, saved as RGB.
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
DIGIT_SIZE = 64
HELD_OUT_START = 1438   # round(0.8 * 1797): first index of the held-out 20%


def save_photo(name: str, out: Path) -> Image.Image:
    img = Image.fromarray(load_sample_image(name))           # (H, W, 3) uint8
    if img.width > MAX_WIDTH:
        h = round(img.height * MAX_WIDTH / img.width)
        img = img.resize((MAX_WIDTH, h), Image.Resampling.LANCZOS)
    img.save(out / name, quality=JPEG_QUALITY)
    return img


def save_digits(out: Path) -> list[tuple[str, int, int]]:
    digits = load_digits()
    assert HELD_OUT_START == round(0.8 * len(digits.target))
    rows = []
    for label in range(10):
        # first example of this class in the held-out part
        idx = HELD_OUT_START + int(np.flatnonzero(digits.target[HELD_OUT_START:] == label)[0])
        px = np.round(digits.images[idx] * 255.0 / 16.0).astype(np.uint8)   # (8, 8), 0..16 -> 0..255
        img = Image.fromarray(px).resize((DIGIT_SIZE, DIGIT_SIZE), Image.Resampling.NEAREST)
        name = f"digit_{label}.png"
        img.convert("RGB").save(out / name)
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
