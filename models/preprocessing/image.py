"""Images to `pixel_values`: any image Pillow opens, converted to RGB, then resize, rescale, normalise.

Driven by a Hugging Face `preprocessor_config.json` (ViTImageProcessor's fields) and written to
give the same numbers: Pillow does the resize, as transformers' processor does, and the rest is
plain numpy. Images are checked for size from the header alone, before any pixel is decoded, so
a 20000 x 20000 file is refused at once instead of filling memory.
"""
from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

# About 7000 x 7000: far above any photo a model reads (they are resized to a few hundred pixels),
# and small enough that decoding one cannot exhaust memory.
MAX_IMAGE_PIXELS = 50_000_000

ImageInput = Union[Image.Image, np.ndarray, torch.Tensor, str, Path, bytes, io.IOBase]


def _check_size(width: int, height: int, what: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(f"{what} is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels); the limit is "
                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Scale it down first: models read a few hundred pixels.")
    if width == 0 or height == 0:
        raise InputError(f"{what} is empty ({width} x {height} pixels).")


def _open(source: Any, what: str) -> Image.Image:
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise InputError(f"Image file {source} does not exist.")
    if isinstance(source, bytes):
        source = io.BytesIO(source)
    try:
        with warnings.catch_warnings():  # our own, lower limit below gives the clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)  # reads the header only
    except Image.DecompressionBombError as error:
        raise InputError(f"{what} is too large to open safely ({error}). The limit is "
                         f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels: scale it down first.") from None
    except UnidentifiedImageError:
        raise InputError(f"{what} is not an image Pillow can read (PNG, JPEG, GIF, BMP, TIFF, WebP, ...). "
                         "Is it another kind of file with an image's extension?") from None
    except OSError as error:
        raise InputError(f"{what} cannot be read as an image: {error}.") from None
    _check_size(image.width, image.height, what)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(f"{what} is truncated or corrupt: {error}.") from None
    return image


def load_image(source: ImageInput, what: str | None = None) -> Image.Image:
    """An RGB PIL image from a PIL image, an array (H, W[, C]) uint8 or float in [0, 1], a path, bytes or a file."""
    what = what or (f"Image {source}" if isinstance(source, (str, Path)) else "The image")
    if isinstance(source, torch.Tensor):
        source = source.detach().cpu().numpy()
        if source.ndim == 3 and source.shape[0] in (1, 3, 4) and source.shape[-1] not in (1, 3, 4):
            source = source.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
    if isinstance(source, np.ndarray):
        image = _from_array(source, what)
    elif isinstance(source, Image.Image):
        _check_size(source.width, source.height, what)
        image = source
    elif isinstance(source, (str, Path, bytes)) or hasattr(source, "read"):
        image = _open(source, what)
    else:
        raise InputError(f"{what}: expected a PIL image, an array, a file path or bytes; got {type(source).__name__}.")
    image = ImageOps.exif_transpose(image)  # phone photos store their rotation in EXIF, as transformers' load_image reads it
    return image.convert("RGB")


def _from_array(array: np.ndarray, what: str) -> Image.Image:
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
        raise InputError(f"{what}: an image array must be (H, W), (H, W, 3) or (H, W, 4); got {array.shape}.")
    _check_size(array.shape[1], array.shape[0], what)
    if array.dtype != np.uint8:
        if not np.isfinite(array).all():
            raise InputError(f"{what} contains NaN or infinite values.")
        scale = 255.0 if array.max() <= 1.0 else 1.0  # floats in [0, 1], as transformers assumes
        array = np.clip(np.rint(array.astype(np.float64) * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


@dataclass
class ImageProcessor:
    """ViTImageProcessor's steps: resize to (height, width), optional centre crop, rescale, normalise. With
    `shortest_edge` (CLIPImageProcessor's size), the resize keeps the aspect ratio and makes the shorter side that
    long; the centre crop then cuts the square the model reads."""
    height: int
    width: int
    resample: int = 2                         # PIL code: 2 bilinear, 3 bicubic, 0 nearest, 1 lanczos
    do_resize: bool = True
    do_rescale: bool = True
    rescale_factor: float = 1 / 255
    do_normalize: bool = True
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    crop: tuple[int, int] | None = None       # (height, width) of a centre crop after resizing
    shortest_edge: int | None = None          # resize keeping the aspect ratio instead of to (height, width)
    config: dict[str, Any] = field(default_factory=dict)   # the file it came from, written back on save

    @classmethod
    def from_dict(cls, config: dict[str, Any], default_size: int | None = None) -> "ImageProcessor":
        size = config.get("size") or {}
        if isinstance(size, int):
            size = {"height": size, "width": size}
        shortest = size.get("shortest_edge") if isinstance(size, dict) else None
        if shortest is not None:
            if set(size) != {"shortest_edge"}:
                raise InputError(f"preprocessor_config.json: size {size!r} is not supported; give shortest_edge alone.")
            size = {"height": int(shortest), "width": int(shortest)}
        if "height" not in size and default_size is not None:
            size = {"height": default_size, "width": default_size}
        if "height" not in size:
            raise InputError(f"preprocessor_config.json: size {size!r} is not supported; give height and width.")
        crop = config.get("crop_size") if config.get("do_center_crop") else None
        if isinstance(crop, int):  # older processors write one number for a square crop
            crop = {"height": crop, "width": crop}
        return cls(
            height=int(size["height"]), width=int(size["width"]), resample=int(config.get("resample", 2)),
            do_resize=config.get("do_resize", True), do_rescale=config.get("do_rescale", True),
            rescale_factor=float(config.get("rescale_factor", 1 / 255)), do_normalize=config.get("do_normalize", True),
            image_mean=list(config.get("image_mean", [0.5, 0.5, 0.5])), image_std=list(config.get("image_std", [0.5, 0.5, 0.5])),
            crop=(int(crop["height"]), int(crop["width"])) if crop else None, config=dict(config),
            shortest_edge=int(shortest) if shortest is not None else None,
        )

    @classmethod
    def from_folder(cls, folder: Path, default_size: int | None = None) -> "ImageProcessor":
        path = Path(folder) / "preprocessor_config.json"
        config = json.loads(path.read_text()) if path.exists() else {}
        return cls.from_dict(config, default_size)

    def preprocess_one(self, image: Image.Image) -> np.ndarray:
        """(3, H, W) float32 for one RGB image."""
        if self.do_resize:
            image = image.resize(self._resized_size(image), resample=Image.Resampling(self.resample))
        if self.crop:
            top, left = (image.height - self.crop[0]) // 2, (image.width - self.crop[1]) // 2
            image = image.crop((left, top, left + self.crop[1], top + self.crop[0]))
        array = np.asarray(image)  # (H, W, 3) uint8
        if self.do_rescale:
            array = (array.astype(np.float64) * self.rescale_factor).astype(np.float32)  # as transformers' rescale
        array = array.astype(np.float32)
        if self.do_normalize:
            mean = np.asarray(self.image_mean, dtype=np.float32)
            std = np.asarray(self.image_std, dtype=np.float32)
            array = (array - mean) / std
        return array.transpose(2, 0, 1)  # (3, H, W)

    def _resized_size(self, image: Image.Image) -> tuple[int, int]:
        """(width, height) after the resize, as transformers' get_resize_output_image_size computes it."""
        if self.shortest_edge is None:
            return self.width, self.height
        short, long = sorted((image.width, image.height))
        new_long = int(self.shortest_edge * long / short)
        if image.width <= image.height:
            return self.shortest_edge, new_long
        return new_long, self.shortest_edge

    def __call__(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """pixel_values (B, 3, H, W) for one image or a list."""
        batch = list(images) if isinstance(images, (list, tuple)) else [images]
        if not batch:
            raise InputError("No image given.")
        arrays = [self.preprocess_one(load_image(image)) for image in batch]
        return torch.from_numpy(np.stack(arrays))  # (B, 3, H, W)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.config)
        size = {"shortest_edge": self.shortest_edge} if self.shortest_edge else {"height": self.height, "width": self.width}
        out.update(do_resize=self.do_resize, size=size, resample=self.resample,
                   do_rescale=self.do_rescale, rescale_factor=self.rescale_factor, do_normalize=self.do_normalize,
                   image_mean=self.image_mean, image_std=self.image_std)
        out.setdefault("image_processor_type", "ViTImageProcessor")
        return out

    def save(self, folder: Path) -> None:
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(self.to_dict(), indent=2))
