"""A bridge over transformers' own modules, for architectures that have no native family here.

A native family (models/families/) reimplements a model: every feature, exact and fast. Anything
else transformers can load (`AutoModelForCausalLM`, else `AutoModel`; eager attention) opens
through this bridge, which wraps transformers' network instead of converting it. It gives:

- `run()` -> `Trace` with tokens, hidden states, attention patterns and logits, from transformers'
  `output_hidden_states` / `output_attentions` (the same numbers: it is the same forward);
- hook points at the block boundaries (`blocks.{i}.hook_resid_pre`, `blocks.{i}.hook_resid_post`,
  (B, T, d)) and at the attention output (`blocks.{i}.attn.hook_z`, (B, T, H, dh): the per-head input
  of the output projection, after head masking, as on native models);
- head masking as transformers 4.x `head_mask`: each masked head's slice of the output projection's
  input is scaled (0 masks it), through `mask_heads()` and `forward(head_scales=...)` with gradients
  flowing, so analysis.head_importance runs on a bridged model unchanged;
- greedy `generate()` by transformers' own `generate`, with the masks of the caller's context active.

How: the layer list (the ModuleList of `num_hidden_layers` blocks), each block's attention
submodule and its output projection (o_proj, out_proj, c_proj, dense, ...: a Linear or Conv1D) are
found by structure, not by name of architecture. Torch forward and pre-forward hooks are registered
once, when the model is wrapped; they do nothing unless a hook (models/hooks.py) or a head mask
(models/mask_context.py) is active in the caller's context, so a shared model is never mutated.
A one-token probe at wrap time checks that what was found is what runs (each block's input is the
residual stream transformers reports, each output projection is called); otherwise the model is
refused with a message naming its type.

What needs our own implementation (pruning, new tokens, task heads, deferred patterns, the logit
lens, activation sites inside attention) raises `NeedsNativeFamilyError`, listing the native families.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .config import ModelConfig
from .errors import InputError, ModelNotFoundError, UnsupportedArchitectureError, WeightFileError
from .families import FAMILIES
from .head_selection import HeadSpec, check_scales
from .hooks import HookPoint, attach_hooks, is_hooked
from .inputs import Prepared, TextInputs
from .mask_context import masks_active, with_active_masks
from .memory_budget import check_fits
from .tokenization import TextTokenizer
from .trace import Trace
from .workbench_model import DEFAULT_MAX_TOKENS, WorkbenchModel

# names an attention block's output projection goes by, most specific first
OUTPUT_PROJECTION_NAMES = ("o_proj", "out_proj", "c_proj", "dense", "out_lin", "o", "wo", "out", "proj")
# config attributes that give the longest input, in the order transformers' configs use them
MAX_POSITION_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")
INSTALL_HINT = "pip install 'transformers>=4.50,<5' (or the project's extra: pip install -e '.[convert]')"


class NeedsNativeFamilyError(UnsupportedArchitectureError):
    """A feature a bridged model cannot offer: it needs the architecture implemented as a native family."""


def native_families() -> str:
    return ", ".join(sorted(FAMILIES))


# ---------------------------------------------------------------------------- finding the parts

@dataclass(frozen=True)
class BridgeLayout:
    """Where the parts are inside transformers' network."""
    layers_path: str                  # the ModuleList of blocks, e.g. "transformer.h"
    attention_paths: tuple[str, ...]  # per block, its attention submodule, relative to the block ("self_attention")
    projection_paths: tuple[str, ...] # per block, the output projection, relative to the block ("self_attention.dense")
    n_heads: int
    d_head: int


def _in_features(module: nn.Module) -> int | None:
    """Input width of a Linear, or of transformers' Conv1D (GPT-2 style, weight (in, out)); None otherwise."""
    if isinstance(module, nn.Linear):
        return module.in_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nx"):
        return int(module.nx)
    return None


def _out_features(module: nn.Module) -> int | None:
    if isinstance(module, nn.Linear):
        return module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return int(module.nf)
    return None


def _output_projection(attention: nn.Module, n_heads: int, d_model: int) -> str | None:
    """The relative path of `attention`'s output projection: a Linear/Conv1D named like one, mapping
    n_heads * d_head features to d_model."""
    found: dict[str, list[str]] = {}
    for path, module in attention.named_modules():
        width = _in_features(module)
        if not path or width is None or width % n_heads or _out_features(module) != d_model:
            continue
        found.setdefault(path.rsplit(".", 1)[-1], []).append(path)
    for name in OUTPUT_PROJECTION_NAMES:
        if len(found.get(name, ())) == 1:
            return found[name][0]
    return None


def _attention_in(block: nn.Module, n_heads: int, d_model: int) -> tuple[str, str] | None:
    """(attention path, output projection path) inside one block: the outermost submodule named like an
    attention (…attn…, …attention…) that holds an output projection; cross-attention is not the one."""
    for path, module in block.named_modules():
        last = path.rsplit(".", 1)[-1].lower()
        if not path or _in_features(module) is not None or "cross" in last or "encoder_attn" in last:
            continue
        if "attn" in last or "attention" in last:
            projection = _output_projection(module, n_heads, d_model)
            if projection is not None:
                return path, f"{path}.{projection}"
    return None


def find_layout(network: nn.Module, n_layers: int, n_heads: int, d_model: int, model_type: str) -> BridgeLayout:
    """The layer list, attention submodules and output projections of `network`, or a clear refusal."""
    candidates = []
    for path, module in network.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n_layers and n_layers > 0:
            found = [_attention_in(block, n_heads, d_model) for block in module]
            if all(found):
                candidates.append((path, found))
    if not candidates:
        raise UnsupportedArchitectureError(
            f"Architecture {model_type!r} has no native family, and the bridge over transformers could not find its "
            f"blocks: no list of {n_layers} layers (num_hidden_layers) whose attention has an output projection "
            f"(one of {', '.join(OUTPUT_PROJECTION_NAMES)}) from {n_heads} heads to width {d_model}. "
            f"Native families: {native_families()}.")
    if len(candidates) > 1:
        paths = ", ".join(path for path, _ in candidates)
        raise UnsupportedArchitectureError(
            f"Architecture {model_type!r} has no native family, and the bridge over transformers found more than one "
            f"stack of {n_layers} blocks ({paths}); it bridges one-stack models only. Native families: "
            f"{native_families()}.")
    path, found = candidates[0]
    projection = network.get_submodule(path)[0].get_submodule(found[0][1])
    d_head = _in_features(projection) // n_heads
    for index, (_, proj_path) in enumerate(found):
        if _in_features(network.get_submodule(path)[index].get_submodule(proj_path)) != n_heads * d_head:
            raise UnsupportedArchitectureError(
                f"Architecture {model_type!r}: the bridge needs every layer to have {n_heads} heads of width {d_head}, "
                f"but layer {index}'s output projection reads a different width (pruned or uneven heads). "
                f"Native families: {native_families()}.")
    return BridgeLayout(path, tuple(a for a, _ in found), tuple(p for _, p in found), n_heads, d_head)


# ---------------------------------------------------------------------------- the wrapped network

class _BridgeAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_z = HookPoint("(B, T, H, dh) per-head input of the output projection, after head masking")


class _BridgeBlock(nn.Module):
    """The hook points of one of transformers' blocks (the block itself stays where transformers put it)."""

    def __init__(self) -> None:
        super().__init__()
        self.hook_resid_pre = HookPoint("(B, T, d) the block's input residual stream")
        self.attn = _BridgeAttention()
        self.hook_resid_post = HookPoint("(B, T, d) the block's output residual stream")


def _first_tensor(args: tuple, kwargs: dict, name: str = "hidden_states") -> tuple[torch.Tensor | None, bool]:
    """The block's hidden-state input, and whether it came positionally."""
    if args and isinstance(args[0], torch.Tensor):
        return args[0], True
    value = kwargs.get(name)
    return (value, False) if isinstance(value, torch.Tensor) else (None, False)


class BridgeNetwork(nn.Module):
    """transformers' model (`hf`) plus our hook points (`blocks`), joined by torch hooks registered here once."""
    is_encoder_decoder = False
    head = None  # no task head of ours: analysis that reads one says it is missing

    def __init__(self, hf: nn.Module, layout: BridgeLayout, stack: str, model_type: str) -> None:
        super().__init__()
        self.hf = hf
        self.layout = layout
        self.stack = stack
        self.model_type = model_type
        self.blocks = nn.ModuleList(_BridgeBlock() for _ in layout.attention_paths)
        layers = hf.get_submodule(layout.layers_path)
        for index, layer in enumerate(layers):
            # partials of this module's methods: a deepcopy of the network rebinds them to the copy
            layer.register_forward_pre_hook(functools.partial(BridgeNetwork._block_pre, self, index), with_kwargs=True)
            layer.register_forward_hook(functools.partial(BridgeNetwork._block_post, self, index))
            projection = layer.get_submodule(layout.projection_paths[index])
            projection.register_forward_pre_hook(functools.partial(BridgeNetwork._projection_pre, self, index))

    def forward(self, **inputs: Any):
        return self.hf(**inputs)

    # our networks' parts that analysis reads directly; transformers' own are not these
    @property
    def embed(self) -> nn.Module:
        raise NeedsNativeFamilyError(
            f"Reading the token embedding (attribution, vocabulary analysis) needs a native family: this "
            f"{self.model_type!r} model is opened through the bridge over transformers. Native families: "
            f"{native_families()}.")

    @property
    def final_norm(self) -> nn.Module:
        raise NeedsNativeFamilyError(
            f"The final norm (the logit lens) needs a native family: this {self.model_type!r} model is opened through "
            f"the bridge over transformers. Native families: {native_families()}.")

    # torch hooks: each returns None (changes nothing) unless a hook or mask is active in this context
    def _block_pre(self, index: int, module: nn.Module, args: tuple, kwargs: dict):
        point = self.blocks[index].hook_resid_pre
        if not is_hooked(point):
            return None
        x, positional = _first_tensor(args, kwargs)
        if x is None:
            return None
        x = point(x)
        if positional:
            return (x, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": x}

    def _block_post(self, index: int, module: nn.Module, args: tuple, output: Any):
        point = self.blocks[index].hook_resid_post
        if not is_hooked(point):
            return None
        if isinstance(output, torch.Tensor):  # (B, T, d)
            return point(output)
        if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):  # (hidden, attn, ...)
            return (point(output[0]), *output[1:])
        return None

    def _projection_pre(self, index: int, module: nn.Module, args: tuple):
        point = self.blocks[index].attn.hook_z
        scales = with_active_masks(self, None)
        scale = scales.get((self.stack, index)) if scales else None
        if scale is None and not is_hooked(point):
            return None
        x = args[0]  # (..., T, H * dh)
        z = x.reshape(*x.shape[:-1], self.layout.n_heads, self.layout.d_head)  # (B, T, H, dh)
        if scale is not None:
            per_example = scale.to(z.dtype).reshape(-1, self.layout.n_heads)  # (B or 1, H)
            if z.dim() != 4 and per_example.shape[0] != 1:
                raise InputError("Per-example head scales need the output projection's input as (B, T, H * dh).")
            z = z * (per_example[:, None, :, None] if z.dim() == 4 else per_example[0, :, None])
        z = point(z)
        return (z.reshape(x.shape), *args[1:])


@dataclass
class BridgeOutput:
    """What `BridgedModel.forward` returns: transformers' outputs under our names."""
    hidden_states: tuple[torch.Tensor, ...]   # n_layers + 1 of (B, T, d); the last after the final norm
    attentions: tuple[torch.Tensor, ...]      # n_layers of (B, H, T, T); masked heads scaled, as transformers 4.x; () without capture
    resid_final: torch.Tensor                 # (B, T, d) the last block's output, before any final norm
    logits: torch.Tensor | None               # (B, T, vocab) of a causal LM; None for a bare body


# ---------------------------------------------------------------------------- inputs and the model

class BridgeTextInputs(TextInputs):
    """Text in, as on native text models; the trace comes from transformers' outputs."""

    def trace(self, model: "BridgedModel", prepared: Prepared, out: BridgeOutput) -> Trace:
        mask = prepared.inputs["attention_mask"]
        return Trace(
            tokens=prepared.tokens, input_ids=prepared.inputs["input_ids"], attention_mask=mask,
            hidden_states=out.hidden_states, attentions=out.attentions, resid_final=out.resid_final,
            logits=out.logits, token_type_ids=prepared.inputs.get("token_type_ids"), head_ids=model.head_ids(),
            warnings=prepared.warnings, texts=prepared.texts, model_name=model.name, modality=self.modality,
            extras={})

    def generate(self, model: "BridgedModel", text: str, max_new_tokens: int = 20) -> list[int]:
        """The ids of the new tokens of a greedy continuation of `text`, by transformers' `generate`."""
        if not model.can_generate:
            raise InputError(f"{model.display_name} has no language-modelling head to generate with.")
        ids = model.encode(text).input_ids  # (1, P)
        steps = min(max_new_tokens, model.config.max_positions - ids.shape[1])
        if steps <= 0:
            return []
        eos = model.config.eos_token_id
        out = model.network.hf.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=steps, do_sample=False, num_beams=1,
            eos_token_id=eos, pad_token_id=model.config.pad_token_id if model.config.pad_token_id is not None else eos)
        return out[0, ids.shape[1]:].tolist()


BRIDGE_TEXT_INPUTS = BridgeTextInputs()


class BridgedModel(WorkbenchModel):
    """A model transformers implements and we do not: hidden states, attention, hooks, head masks and
    importance through transformers' own modules. `model_type` is the checkpoint's (`config.family` too)."""
    is_native = False

    def __init__(self, network: BridgeNetwork, config: ModelConfig, model_type: str, **fields: Any) -> None:
        super().__init__(network, config, **fields)
        self.model_type = model_type

    # ------------------------------------------------------------------ facts
    @property
    def family_record(self):
        raise self._needs_native("A family record (converters, task heads, preprocessors)")

    @property
    def inputs(self) -> BridgeTextInputs:
        return BRIDGE_TEXT_INPUTS

    @property
    def modality(self) -> str:
        return "text"

    @property
    def has_lm_head(self) -> bool:
        """False: the bridge reads no final norm and unembedding of its own, so there is no logit lens."""
        return False

    def head_ids(self, stack: str | None = None) -> list[list[int]]:
        stack = stack or self.config.main_stack
        return [self.config.heads_in_layer(layer, stack) for layer in range(self.config.stacks[stack][0])]

    def __repr__(self) -> str:
        return (f"BridgedModel({self.display_name!r}, {self.model_type} through transformers, {self.n_layers} layers "
                f"x {self.n_heads} heads, d_model {self.config.d_model}, task {self.task})")

    def _needs_native(self, what: str) -> NeedsNativeFamilyError:
        return NeedsNativeFamilyError(
            f"{what} needs a native family: {self.display_name} ({self.model_type!r}) is opened through the bridge "
            "over transformers, which gives hidden states, attention patterns, hooks at block boundaries and at the "
            "attention output, head masking, gradient head importance and greedy generation only. Native families: "
            f"{native_families()}.")

    # ------------------------------------------------------------------ running
    def forward(self, head_scales: dict | None = None, capture: bool | str = True, **inputs: Any) -> BridgeOutput:
        """transformers' forward with this context's head masks (and `head_scales`, keyed like native models'
        scales) at the output projections; gradients flow. Hidden states always; `capture` (True, or "deferred",
        which the bridge computes at once) asks for the attention patterns too."""
        for ours in ("cache", "read_positions", "start_layer", "stop_layer"):
            if inputs.get(ours) is not None:
                raise self._needs_native(f"forward({ours}=...)")
            inputs.pop(ours, None)
        if inputs.get("token_type_ids") is not None and not getattr(self.network.hf.config, "type_vocab_size", 0):
            inputs["token_type_ids"] = None  # pass only what a model expects
        inputs = {k: v for k, v in inputs.items() if v is not None}
        given = check_scales(self.config, head_scales) if head_scales else None
        capture = bool(capture)
        grabbed: dict[str, torch.Tensor] = {}
        last = f"blocks.{self.n_layers - 1}.hook_resid_post"
        with contextlib.ExitStack() as stack:
            if given:
                stack.enter_context(masks_active(self.network, given))
            stack.enter_context(attach_hooks(self.hook_points, {last: lambda x, name: grabbed.update(x=x)}))
            # hidden states always, as on native models (they are the forward's own tensors); patterns on capture
            out = self.network(**inputs, output_attentions=capture, output_hidden_states=True, use_cache=False,
                               return_dict=True)
            scales = with_active_masks(self.network, None)
        attentions: tuple[torch.Tensor, ...] = ()
        if capture:
            attentions = tuple(out.attentions or ())
            if len(attentions) != self.n_layers or any(a is None for a in attentions):
                raise UnsupportedArchitectureError(
                    f"{self.display_name} ({self.model_type!r}): transformers returned no attention weights for every "
                    "layer, so the bridge cannot show them. Native families: " + native_families() + ".")
            if scales:  # report masked heads as transformers 4.x `head_mask` does: the pattern scaled too
                attentions = tuple(self._scaled(layer, pattern, scales) for layer, pattern in enumerate(attentions))
        return BridgeOutput(
            hidden_states=tuple(out.hidden_states), attentions=attentions,
            resid_final=grabbed["x"], logits=getattr(out, "logits", None))

    def _scaled(self, layer: int, pattern: torch.Tensor, scales: dict) -> torch.Tensor:
        scale = scales.get((self.config.main_stack, layer))
        if scale is None:
            return pattern
        per_example = scale.to(pattern.dtype).reshape(-1, self.n_heads)  # (B or 1, H)
        return pattern * per_example[:, :, None, None]

    @torch.no_grad()
    def generate_traced(self, text: str, max_new_tokens: int = 20) -> tuple[list[int], Trace]:
        """`generate`, then one run over prompt + continuation for its trace."""
        new = self.generate(text, max_new_tokens=max_new_tokens)
        ids = self.encode(text).input_ids[0].tolist() + list(new)
        return new, self.run(input_ids=torch.tensor([ids]))

    # ------------------------------------------------------------------ what needs a native family
    def prune_heads(self, heads: HeadSpec) -> WorkbenchModel:
        raise self._needs_native("Pruning heads (removing their parameters)")

    def mask_experts(self, experts: dict[int, Sequence[int]]):
        raise self._needs_native("Masking experts")

    def derive(self, network, config: ModelConfig, **fields: Any) -> WorkbenchModel:
        raise self._needs_native("A model derived from this one")

    def add_tokens(self, tokens: str | Sequence[str], special: bool = False, init: str = "pieces",
                   seed: int = 0) -> WorkbenchModel:
        raise self._needs_native("Adding tokens to the vocabulary")

    def with_head(self, task: str, labels: Sequence[str] | dict[int, str] | None = None,
                  seed: int = 0) -> WorkbenchModel:
        raise self._needs_native(f"A {task!r} task head")

    def save_pretrained(self, folder: str | Path) -> Path:
        """transformers' own save of the (never pruned) model, and the tokenizer."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.network.hf.save_pretrained(folder)
        if self.tokenizer is not None:
            self.tokenizer.save(folder)
        return folder


# ---------------------------------------------------------------------------- loading

def _transformers():
    """transformers, or None when it is not installed."""
    try:
        import transformers
    except ImportError:
        return None
    return transformers


def open_bridged(folder: Path, hf: dict[str, Any], refused: UnsupportedArchitectureError, name: str = "",
                 task: str | None = None) -> BridgedModel:
    """The folder's model through the bridge, when transformers knows its `model_type`; otherwise `refused`
    (the loader's error for an architecture with no native family), saying what the bridge lacked."""
    model_type = hf.get("model_type")
    transformers = _transformers()
    if transformers is None:
        raise UnsupportedArchitectureError(
            f"{refused} It could open through the bridge over transformers, but transformers is not installed: "
            f"{INSTALL_HINT}.") from refused
    from transformers import CONFIG_MAPPING
    if not model_type or model_type not in CONFIG_MAPPING:
        raise UnsupportedArchitectureError(
            f"{refused} transformers {transformers.__version__} does not know it either, so the bridge cannot open it."
        ) from refused
    if task not in (None, "causal-lm"):
        raise NeedsNativeFamilyError(
            f"{refused} The bridge over transformers opens it as a causal LM or a bare body only; a {task!r} head "
            f"needs a native family ({native_families()}).") from refused
    try:
        return _bridge(Path(folder), hf, model_type, name or Path(folder).name, task)
    except UnsupportedArchitectureError as why:
        raise UnsupportedArchitectureError(f"{refused} {why}") from refused


def _causal_lm_types() -> tuple[set[str], set[str]]:
    """(model types with a causal-LM class, the classes' names), encoders with an LM-head variant left out."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)
    return set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) - set(MODEL_FOR_MASKED_LM_MAPPING_NAMES), \
        set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())


def _is_causal_lm(hf: dict[str, Any], model_type: str, task: str | None) -> bool:
    """Open as a causal LM: asked to, or the checkpoint's architectures name a causal-LM class, or (none named)
    transformers has one for this decoder-only type. BERT-like types have one too, but their checkpoints say so."""
    decoder_only, classes = _causal_lm_types()
    if task == "causal-lm":
        return True
    architectures = hf.get("architectures") or []
    if architectures:
        return any(a in classes or a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures)
    return model_type in decoder_only


def _config_int(config: Any, keys: Sequence[str]) -> int | None:
    return next((getattr(config, k) for k in keys if isinstance(getattr(config, k, None), int)), None)


def _bridge(folder: Path, hf: dict[str, Any], model_type: str, name: str, task: str | None) -> BridgedModel:
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if getattr(config, "is_encoder_decoder", False):
        raise UnsupportedArchitectureError(
            f"{model_type!r} is an encoder-decoder; the bridge opens one-stack models only. Native families: "
            f"{native_families()}.")
    n_layers, n_heads, d_model = (_config_int(config, [key]) for key in
                                  ("num_hidden_layers", "num_attention_heads", "hidden_size"))
    if not all(v is not None and v > 0 for v in (n_layers, n_heads, d_model)):
        raise UnsupportedArchitectureError(
            f"{model_type!r}: its config gives no num_hidden_layers, num_attention_heads and hidden_size, which the "
            f"bridge needs to find its blocks. Native families: {native_families()}.")
    causal = _is_causal_lm(hf, model_type, task)
    if causal and model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        if task == "causal-lm":
            raise UnsupportedArchitectureError(f"transformers has no causal LM class for {model_type!r}.")
        causal = False
    eos = config.eos_token_id[0] if isinstance(config.eos_token_id, list) else config.eos_token_id
    cfg = ModelConfig(
        family=model_type, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=_config_int(config, ["num_key_value_heads"]) or n_heads, d_model=d_model,
        d_head=_config_int(config, ["head_dim"]) or max(1, d_model // n_heads),
        d_mlp=_config_int(config, ["intermediate_size", "n_inner", "ffn_dim"]) or 4 * d_model,
        vocab_size=config.vocab_size, max_positions=_config_int(config, MAX_POSITION_KEYS) or DEFAULT_MAX_TOKENS,
        causal=causal or model_type in _causal_lm_types()[0],
        pad_token_id=config.pad_token_id, bos_token_id=config.bos_token_id, eos_token_id=eos,
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)), hf_config=dict(hf))
    check_fits(cfg, folder, name)  # before transformers allocates anything
    try:
        network, info = (AutoModelForCausalLM if causal else AutoModel).from_pretrained(
            folder, config=config, attn_implementation="eager", local_files_only=True, output_loading_info=True)
    except ImportError as error:
        raise UnsupportedArchitectureError(f"transformers needs another package to build {model_type!r}: {error}.") from error
    except (OSError, ValueError, RuntimeError) as error:
        raise WeightFileError(f"{folder}: transformers could not load the {model_type!r} weights ({error}).") from error
    missing = [*info.get("missing_keys", []), *[k for k, *_ in info.get("mismatched_keys", [])]]
    if missing:  # transformers would run them randomly initialised: never silently wrong
        raise WeightFileError(f"{folder}: weights missing from the checkpoint or of the wrong shape: "
                              f"{', '.join(sorted(missing)[:8])}{' ...' if len(missing) > 8 else ''}.")
    if getattr(network, "main_input_name", "input_ids") != "input_ids":
        raise UnsupportedArchitectureError(
            f"{model_type!r} reads {network.main_input_name}; the bridge opens text models only. Native families: "
            f"{native_families()}.")
    layout = find_layout(network, n_layers, n_heads, d_model, model_type)
    cfg.d_head = layout.d_head
    try:
        tokenizer = TextTokenizer.from_folder(folder)
    except ModelNotFoundError:
        tokenizer = None  # runs on input_ids alone
    model = BridgedModel(BridgeNetwork(network, layout, cfg.main_stack, model_type), cfg, model_type,
                         tokenizer=tokenizer, name=name, task="causal-lm" if causal else None, source=str(folder))
    _probe(model)
    return model


@torch.no_grad()
def _probe(model: BridgedModel) -> None:
    """Run two tokens with every hook point watched: each block must see the residual stream transformers reports
    as its input, and each output projection must be called; else the layout found is not what runs."""
    seen: dict[str, torch.Tensor] = {}
    ids = torch.zeros(1, 2, dtype=torch.long)
    def watch(x: torch.Tensor, name: str) -> None:
        seen.setdefault(name, x)

    with model.hooks({"blocks.*": watch}):
        out = model.forward(input_ids=ids, attention_mask=torch.ones_like(ids))
    for layer in range(model.n_layers):
        pre, z = seen.get(f"blocks.{layer}.hook_resid_pre"), seen.get(f"blocks.{layer}.attn.hook_z")
        if z is None or pre is None or f"blocks.{layer}.hook_resid_post" not in seen:
            where = "output projection" if pre is not None else "block"
            raise UnsupportedArchitectureError(
                f"{model.model_type!r}: the {where} of layer {layer} the bridge found is not called as a module, so "
                f"hooks and head masks would not apply. Native families: {native_families()}.")
        if pre.shape != out.hidden_states[layer].shape or not torch.equal(pre, out.hidden_states[layer]):
            raise UnsupportedArchitectureError(
                f"{model.model_type!r}: block {layer}'s first input is not the residual stream transformers reports, "
                f"so the bridge cannot hook it. Native families: {native_families()}.")
