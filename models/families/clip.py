"""CLIP (Radford et al. 2021): an image tower and a text tower trained so that matching pairs point the same way.

The image tower is a pre-norm ViT whose embeddings are normed once more before the first block
(`pre_layrnorm`) and whose [CLS] output is normed for pooling (`post_layernorm`). The text tower is
a causal pre-norm encoder with learned positions; it pools at the end-of-text token. Zero-shot
classification writes each candidate label into a sentence ("This is a photo of {}."), embeds it,
and ranks the labels by cosine similarity with the image.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, hf_config_with_stacked_pruned_heads, stacked_pruned_heads_from_hf
from ..deferred_patterns import collect
from ..dual_encoder import ContrastiveHead, DualEncoder, DualOutput
from ..embeddings import LearnedPositionEmbeddings
from ..errors import InputError
from ..heads import HeadFormat
from ..inputs import IMAGE_INPUTS, InputAdapter, Prepared
from ..preprocessing.image import ImageProcessor
from ..trace import Trace
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename
from .vit import _pair

TASK = "zero-shot-image-classification"
DEFAULT_TEMPLATE = "This is a photo of {}."

# config keys transformers' modeling code reads that change the arithmetic, each mapped or refused below.
# logit_scale_init_value only initialises the checkpoint's logit_scale, which is loaded; initializer_factor the
# same for random weights. text_config_dict / vision_config_dict are older spellings of the two sub-configs.
# encoder_attention_heads appears only in a docstring of modeling_clip.py; the towers read num_attention_heads.
IGNORED_KEYS = ("logit_scale_init_value", "initializer_factor", "text_config_dict", "vision_config_dict",
                "encoder_attention_heads")
READ_KEYS = ("text_config", "vision_config", "projection_dim",
             # both towers' keys, read from their sub-configs
             "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
             "layer_norm_eps", "vocab_size", "max_position_embeddings", "eos_token_id", "bos_token_id",
             "pad_token_id", "image_size", "patch_size", "num_channels")


def _tower(hf: dict[str, Any], tower: str) -> dict[str, Any]:
    sub = hf.get(tower)
    if not isinstance(sub, dict):
        raise KeyError(tower)
    refuse_unsupported(sub, f"CLIP {tower}", hidden_act=lambda v: v in ACTIVATIONS)
    return sub


def _config(hf: dict[str, Any]) -> ModelConfig:
    vision, text = _tower(hf, "vision_config"), _tower(hf, "text_config")
    size, patch = _pair(vision.get("image_size", 224)), _pair(vision.get("patch_size", 32))
    n_heads = vision["num_attention_heads"]
    return ModelConfig(
        family="clip", n_layers=vision["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=vision["hidden_size"], d_head=vision["hidden_size"] // n_heads, d_mlp=vision["intermediate_size"],
        vocab_size=0, max_positions=(size[0] // patch[0]) * (size[1] // patch[1]) + 1,
        norm_eps=vision.get("layer_norm_eps", 1e-5), activation=vision.get("hidden_act", "quick_gelu"),
        main_stack_name="vision", pruned_heads=stacked_pruned_heads_from_hf(hf, "vision"),
        other_stacks={"text": (text["num_hidden_layers"], text["num_attention_heads"])}, hf_config=dict(hf))


def text_config(cfg: ModelConfig) -> ModelConfig:
    """The text tower's one-stack, causal view of a CLIP config."""
    text = cfg.hf_config["text_config"]
    n_heads = text["num_attention_heads"]
    return ModelConfig(
        family="clip", n_layers=text["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=text["hidden_size"], d_head=text["hidden_size"] // n_heads, d_mlp=text["intermediate_size"],
        vocab_size=text["vocab_size"], max_positions=text.get("max_position_embeddings", 77),
        norm_eps=text.get("layer_norm_eps", 1e-5), activation=text.get("hidden_act", "quick_gelu"), causal=True,
        pad_token_id=text.get("pad_token_id"), bos_token_id=text.get("bos_token_id"),
        eos_token_id=text.get("eos_token_id"), main_stack_name="text",
        pruned_heads={k: v for k, v in cfg.pruned_heads.items() if k[0] == "text"}, hf_config=cfg.hf_config)


class ClipPatchEmbeddings(nn.Module):
    """pixels -> [CLS] + patches + learned positions, then `pre_layrnorm` (the first hidden state)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        vision = cfg.hf_config["vision_config"]
        self.image_size = _pair(vision.get("image_size", 224))
        self.patch_size = _pair(vision.get("patch_size", 32))
        self.num_channels = vision.get("num_channels", 3)
        self.grid = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.projection = nn.Conv2d(self.num_channels, cfg.d_model, kernel_size=self.patch_size,
                                    stride=self.patch_size, bias=False)
        self.class_embedding = nn.Parameter(torch.zeros(cfg.d_model))
        self.position = nn.Embedding(self.grid[0] * self.grid[1] + 1, cfg.d_model)
        self.pre_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def embed_signal(self, pixel_values: torch.Tensor, attention_mask: torch.Tensor | None):
        B, C, H, W = pixel_values.shape
        if (H, W) != self.image_size or C != self.num_channels:
            raise InputError(f"This CLIP reads {self.num_channels} x {self.image_size[0]} x {self.image_size[1]} "
                             f"pixel values; got {C} x {H} x {W}. Pass images through the model's processor.")
        patches = self.projection(pixel_values.to(self.projection.weight.dtype)).flatten(2).transpose(1, 2)  # (B, N, d)
        x = torch.cat([self.class_embedding.expand(B, 1, -1), patches], dim=1) + self.position.weight  # (B, 1 + N, d)
        return self.pre_norm(x), torch.ones(B, x.shape[1], dtype=torch.long, device=x.device)


class ClsPool(nn.Module):
    """The image's vector: `post_layernorm` of the [CLS] position."""

    def __init__(self, d_model: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps)

    def forward(self, final: torch.Tensor) -> torch.Tensor:
        return self.norm(final[:, 0])  # (B, d)


def _end_of_text_pool(eos_token_id: int | None):
    """The text's vector: the final state at the first end-of-text token. Checkpoints made before transformers
    PR #24773 say eos_token_id 2 and mean the highest token id (the end-of-text token was the last id)."""
    def pool(final: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(final.shape[0], device=final.device)
        if eos_token_id is None or eos_token_id == 2:
            return final[rows, input_ids.to(torch.int).argmax(-1)]
        return final[rows, (input_ids == eos_token_id).int().argmax(-1)]
    return pool


def _build(cfg: ModelConfig) -> DualEncoder:
    tcfg = text_config(cfg)
    vision = TransformerModel(cfg, ClipPatchEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=False,
                              uses_rotary=False, final_norm=False, stack="vision")
    text = TransformerModel(tcfg, LearnedPositionEmbeddings(tcfg), norm_kind="layer", norm_first=True,
                            gated_mlp=False, uses_rotary=False, final_norm=True, stack="text")
    return DualEncoder(cfg, vision, text, text_config, ClsPool(cfg.d_model, cfg.norm_eps),
                       _end_of_text_pool(tcfg.eos_token_id))


_LAYER = {"attn.q_proj": "self_attn.q_proj", "attn.k_proj": "self_attn.k_proj", "attn.v_proj": "self_attn.v_proj",
          "attn.o_proj": "self_attn.out_proj", "ln1": "layer_norm1", "ln2": "layer_norm2", "mlp.fc_in": "mlp.fc1",
          "mlp.fc_out": "mlp.fc2"}


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF name, our name) of every tower weight (the projections and temperature are the head's)."""
    v, t = "vision_model.", "text_model."
    pairs = [(f"{v}embeddings.class_embedding", "vision.embed.class_embedding"),
             (f"{v}embeddings.patch_embedding.weight", "vision.embed.projection.weight"),
             (f"{v}embeddings.position_embedding.weight", "vision.embed.position.weight"),
             (f"{v}pre_layrnorm.weight", "vision.embed.pre_norm.weight"),
             (f"{v}pre_layrnorm.bias", "vision.embed.pre_norm.bias"),
             (f"{v}post_layernorm.weight", "pool_image.norm.weight"), (f"{v}post_layernorm.bias", "pool_image.norm.bias"),
             (f"{t}embeddings.token_embedding.weight", "text.embed.word.weight"),
             (f"{t}embeddings.position_embedding.weight", "text.embed.position.weight"),
             (f"{t}final_layer_norm.weight", "text.final_norm.weight"), (f"{t}final_layer_norm.bias", "text.final_norm.bias")]
    for i in range(cfg.n_layers):
        pairs += layer_pairs(f"{v}encoder.layers.{i}.", f"vision.blocks.{i}.", _LAYER)
    for i in range(cfg.stacks["text"][0]):
        pairs += layer_pairs(f"{t}encoder.layers.{i}.", f"text.blocks.{i}.", _LAYER)
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, _pairs(cfg))


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, [(ours, hf) for hf, ours in _pairs(cfg)])


def _head(cfg: ModelConfig, num_labels: int) -> ContrastiveHead:
    text = cfg.hf_config["text_config"]
    return ContrastiveHead(cfg.d_model, text["hidden_size"], cfg.hf_config.get("projection_dim", 512),
                           cfg.hf_config.get("logit_scale_init_value", 2.6592))


class ZeroShotImageInputs(InputAdapter):
    """Images and candidate labels (or whole sentences): `run(images=[...], candidate_labels=[...])`.

    The trace is the image tower's (tokens [CLS] + patches, its hidden states and patterns) with `logits`
    (B_images, n_labels) the scaled similarities; `extras["text_tower"]` holds the text tower's tokens, hidden
    states (transformers' `text_model_output.hidden_states`: the last before the final norm), patterns and
    head ids, one row per sentence, kept apart because its batch is the labels, not the images."""
    modality = "image"
    accepts = ("images", "candidate_labels", "hypothesis_template", "texts")

    def sentences(self, candidate_labels=None, hypothesis_template: str = DEFAULT_TEMPLATE, texts=None) -> list[str]:
        if texts is not None and candidate_labels is not None:
            raise InputError("Give candidate_labels (written into the hypothesis template) or texts, not both.")
        if texts is not None:
            return [texts] if isinstance(texts, str) else list(texts)
        if not candidate_labels:
            raise InputError("Zero-shot classification needs candidate_labels=[...]: the names to choose between.")
        labels = [candidate_labels] if isinstance(candidate_labels, str) else list(candidate_labels)
        if any(not isinstance(label, str) or not label.strip() for label in labels):
            raise InputError("A candidate label is empty or not a string: give each label as words.")
        if "{}" not in hypothesis_template:
            raise InputError(f"The hypothesis template {hypothesis_template!r} has no {{}} for the label to go in.")
        return [hypothesis_template.format(label) for label in labels]

    def prepare(self, model, images=None, candidate_labels=None, hypothesis_template: str = DEFAULT_TEMPLATE,
                texts=None) -> Prepared:
        image_part = IMAGE_INPUTS.prepare(model, images=images)
        sentences = self.sentences(candidate_labels, hypothesis_template, texts)
        if any(not s.strip() for s in sentences):
            raise InputError("A candidate label or text is empty.")
        enc = model.tokenizer.encode_batch(sentences, text_config(model.config).max_positions)
        labels = list(candidate_labels) if candidate_labels is not None and not isinstance(candidate_labels, str) \
            else ([candidate_labels] if candidate_labels else sentences)
        return Prepared(
            inputs={**image_part.inputs, "input_ids": enc.input_ids, "attention_mask": enc.attention_mask},
            tokens=image_part.tokens, texts=image_part.texts, warnings=enc.warnings,
            extras={**image_part.extras, "candidate_labels": labels, "sentences": sentences,
                    "text_tokens": enc.tokens})

    def run(self, model, capture: bool | str, **given: Any) -> Trace:
        prepared = self.prepare(model, **given)
        out: DualOutput = model.forward(capture=capture, **prepared.inputs)
        image_inputs = {"pixel_values": prepared.inputs["pixel_values"]}
        trace = self.trace(model, Prepared(inputs=image_inputs, tokens=prepared.tokens, texts=prepared.texts,
                                           warnings=prepared.warnings, extras=prepared.extras), out.image)
        trace.logits = out.logits_per_image
        text = out.text
        trace.extras = {
            **trace.extras, "image_embeds": out.image_embeds, "image_pooled": out.image.extras["pooled"],
            "text_tower": {
                "tokens": prepared.extras["text_tokens"], "input_ids": prepared.inputs["input_ids"],
                "attention_mask": prepared.inputs["attention_mask"], "hidden_states": tuple(text.resid),
                "last_hidden_state": text.final, "attentions": collect(text.attentions),
                "head_ids": model.head_ids("text"), "embeds": out.text_embeds, "pooled": text.extras["pooled"],
                "logits_per_text": out.logits_per_image.t(),
            }}
        return trace


CLIP = register(Family(
    name="clip", model_types=("clip",), config_from_hf=_config, build=_build,
    config_to_hf=hf_config_with_stacked_pruned_heads,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "",
    base_architecture=lambda cfg: "CLIPModel",
    heads={TASK: HeadFormat("CLIPModel", _head, [("visual_projection.weight", "visual_projection.weight"),
                                                 ("text_projection.weight", "text_projection.weight"),
                                                 ("logit_scale", "logit_scale")])},
    fixed_task=True, default_task=TASK, modality="image", inputs=ZeroShotImageInputs(),
    processor=lambda folder, cfg: ImageProcessor.from_folder(
        folder, default_size=_pair(cfg.hf_config["vision_config"].get("image_size", 224))[0]),
))
