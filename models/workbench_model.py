"""The object a notebook or the app holds: run, hook, mask, prune, generate, save — for every family.

A `WorkbenchModel` wraps the network, its config, its family record and its preprocessors
(a tokenizer, an image or audio processor). What a model reads and how its inputs become a
trace is the family's input adapter (models/inputs.py); everything else is written once here.
Nothing here mutates the network: masks and hooks live in this thread's context (so one cached
model can serve many Streamlit sessions), and pruning, new tokens and new heads return a new model.
"""
from __future__ import annotations

import contextlib
import copy
import json
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors.torch import save_file

from . import task_heads, vocabulary
from .config import ModelConfig
from .deferred_patterns import DEFERRED
from .errors import HeadIndexError, InputError
from .experts import experts_masked
from .families import FAMILIES, Family
from .generation import generate_traced
from .head_selection import HeadSpec, check_scales, head_scales_from_spec, selected_heads
from .heads import PIPELINE_TASKS
from .hooks import HookFn, attach_hooks, name_hook_points
from .inputs import InputAdapter, Prepared
from .mask_context import masks_active, with_active_masks
from .model_card import source_facts, write_model_card
from .text_checks import check_max_length, text_batch
from .tokenization import WORKBENCH_CAP, TextInput
from .trace import Trace

# Longest input a run accepts by default, even where positions allow more: a full capture
# stores n_layers * n_heads * T^2 floats, which at 8,192 tokens would not fit in memory.
DEFAULT_MAX_TOKENS = 1024
# attributes that describe how one particular model was made, not what it is
_PER_MODEL = ("vocabulary_change",)


class WorkbenchModel:
    is_native = True           # our own implementation (every feature); a bridged model says False

    def __init__(self, network, config: ModelConfig, tokenizer: Any = None, name: str = "", task: str | None = None,
                 labels: dict[int, str] | None = None, source: str = "", processor: Any = None,
                 generation_config: dict | None = None) -> None:
        self.network = network.eval()
        self.config = config
        self.tokenizer = tokenizer
        self.processor = processor
        self.name = name
        self.task = task
        self.labels = labels or {}
        self.source = source
        self.generation_config = generation_config or {}
        self.hook_points = name_hook_points(network)

    # ------------------------------------------------------------------ facts
    @property
    def family_record(self) -> Family:
        return FAMILIES[self.config.family]

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def inputs(self) -> InputAdapter:
        return self.family_record.inputs

    @property
    def display_name(self) -> str:
        return self.name or self.family

    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    @property
    def n_heads(self) -> int:
        return self.config.n_heads

    @property
    def max_tokens(self) -> int:
        return min(self.config.max_positions, DEFAULT_MAX_TOKENS)

    @property
    def sampling_rate(self) -> int | None:
        return getattr(self.processor, "sampling_rate", None)

    def num_parameters(self) -> int:
        seen, total = set(), 0
        for p in self.network.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        return total

    def head_ids(self, stack: str | None = None) -> list[list[int]]:
        """Original head numbers present in each layer of `stack` (the main one: that of `trace.attentions`)."""
        stack = stack or self.config.main_stack
        n_layers = self.config.stacks[stack][0]
        return [list(self._attention((stack, layer)).head_ids) for layer in range(n_layers)]

    def stack_head_ids(self) -> dict[str, list[list[int]]]:
        return {stack: self.head_ids(stack) for stack in self.config.stacks}

    def _attention(self, key):
        owner, attr = self.network.attention_owner(key)
        return getattr(owner, attr)

    def __repr__(self) -> str:
        kind = "" if self.modality == "text" else f", {self.modality}"
        return (f"WorkbenchModel({self.display_name!r}{kind}, {self.n_layers} layers x {self.n_heads} heads, "
                f"d_model {self.config.d_model}, task {self.task})")

    # ------------------------------------------------------------------ capabilities: pages ask these, never names
    @property
    def modality(self) -> str:
        """What it reads: "text", "image" or "audio"."""
        return self.family_record.modality

    @property
    def is_encoder_decoder(self) -> bool:
        return bool(self.network.is_encoder_decoder)

    @property
    def can_generate(self) -> bool:
        """`generate` works: a causal LM head (text) or a decoder (speech, text-to-text)."""
        return self.task == "causal-lm" or self.is_encoder_decoder

    @property
    def has_lm_head(self) -> bool:
        """Logits over the vocabulary at every position, so a logit lens reads every layer."""
        return self.task in ("causal-lm", "masked-lm") or self.is_encoder_decoder

    @property
    def tasks(self) -> tuple[str, ...]:
        """The pipeline tasks (models.pipeline) this model serves as it is."""
        return PIPELINE_TASKS.get(self.task or "", ())

    @property
    def stacks(self) -> tuple[str, ...]:
        """Names of the attention stacks heads are keyed by: one for encoder-only or decoder-only models."""
        return tuple(self.config.stacks)

    # ------------------------------------------------------------------ running
    def encode(self, texts: TextInput | Sequence[TextInput], max_length: int | None = None):
        if self.modality != "text":
            raise InputError(f"{self.display_name} reads {self.modality}, not text.")
        if self.tokenizer is None:
            raise InputError(f"{self.display_name} has no tokenizer; pass input_ids instead.")
        batch = text_batch(texts)
        max_length = check_max_length(max_length, self.config.max_positions)
        # a cut names its limit: the workbench's cap, a caller's max_length, or the model's own positions
        return self.tokenizer.encode_batch(batch, max_length or self.max_tokens, model_limit=self.config.max_positions,
                                           cap=WORKBENCH_CAP if max_length is None else "requested max_length")

    def active_scales(self, head_scales: dict | None = None) -> dict | None:
        """`head_scales` (checked, keyed by (stack, layer)) combined with this context's head masks."""
        if head_scales:
            head_scales = check_scales(self.config, head_scales)
        return with_active_masks(self.network, head_scales)

    def forward(self, head_scales: dict | None = None, capture: bool | str = True, **inputs: Any):
        """The network's forward with this context's head masks applied; gradients flow (no no_grad here).

        `inputs` are the network's own keyword arguments (input_ids, attention_mask, pixel_values,
        input_features, decoder_input_ids, cache, read_positions, ...); an unknown one is a TypeError.
        `cache` (one dict per layer, filled as it runs) keeps past keys and values for generation;
        `read_positions` computes the last layer at those positions only (TransformerModel.forward)."""
        if inputs.get("token_type_ids") is not None and getattr(self.network.embed, "token_type", None) is None:
            inputs["token_type_ids"] = None  # pass only what a model expects
        return self.network(head_scales=self.active_scales(head_scales), capture=capture, **inputs)

    @torch.no_grad()
    def run(self, texts: TextInput | Sequence[TextInput] | None = None, *, capture: bool | str = True,
            **inputs: Any) -> Trace:
        """Run a text, a batch, sentence pairs, `input_ids=`, `images=[...]` or `audio=[...]` (with
        `sampling_rate=`), as the model's family reads; return every hidden state and attention pattern.

        `capture=False` keeps no patterns; `capture="deferred"` runs fused attention and computes the
        patterns when `trace.attentions` is first read (same numbers; see models/deferred_patterns.py)."""
        if not (isinstance(capture, bool) or capture == DEFERRED):
            raise InputError(f"capture={capture!r} is not a capture mode: use True, False or {DEFERRED!r}.")
        return self.inputs.run(self, capture, **self._given(texts, inputs))

    def prepare(self, texts: Any = None, **inputs: Any) -> Prepared:
        """The network inputs for `run`'s arguments (and what a trace shows of them), without running."""
        return self.inputs.prepare(self, **self._given(texts, inputs))

    def _given(self, texts: Any, inputs: dict[str, Any]) -> dict[str, Any]:
        """`run`'s arguments, each one checked to be something this model reads."""
        given = {"texts": texts, **inputs}
        self.inputs.check(self, given)
        return {k: v for k, v in given.items() if v is not None}

    @torch.no_grad()
    def generate(self, *args: Any, **kwargs: Any):
        """Greedy continuation with the key/value cache: `generate(text, max_new_tokens=20)` gives the new token ids
        of a causal LM; `generate(audio, sampling_rate=None)` the new ids per clip of a speech model."""
        return self.inputs.generate(self, *args, **kwargs)

    @torch.no_grad()
    def generate_traced(self, text: str, max_new_tokens: int = 20) -> tuple[list[int], Trace]:
        """`generate`, and the trace of prompt + continuation assembled from the decoding steps (one extra
        one-token step runs the last new token; see models/generation_trace.py). Patterns are deferred."""
        if self.modality != "text":
            raise InputError(f"{self.display_name} reads {self.modality}; generate_traced continues a text.")
        return generate_traced(self, text, max_new_tokens)

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def transcribe(self, audio: Any, sampling_rate: int | None = None) -> list[str]:
        """The text a speech model hears in each clip."""
        return [self.decode(ids) for ids in self.generate(audio, sampling_rate)]

    # ------------------------------------------------------------------ hooks and head surgery
    @contextlib.contextmanager
    def hooks(self, hooks: dict[str, HookFn] | list[tuple[str, HookFn]]) -> Iterator["WorkbenchModel"]:
        """Run hook functions at named hook points inside the `with` body only."""
        with attach_hooks(self.hook_points, hooks):
            yield self

    @contextlib.contextmanager
    def mask_heads(self, spec: HeadSpec) -> Iterator["WorkbenchModel"]:
        """Zero (or scale) heads' outputs before the output projection, as transformers 4.x `head_mask`.
        Layers are numbers (the main stack), (stack, layer) pairs or "stack.N" (see models/head_selection.py)."""
        with masks_active(self.network, head_scales_from_spec(self.config, spec)):
            yield self

    @contextlib.contextmanager
    def mask_experts(self, experts: dict[int, Sequence[int]]) -> Iterator["WorkbenchModel"]:
        """Mixture-of-experts models: the router never chooses these experts ({layer: [expert ids]}) inside the
        `with` body. Their logits are -inf before the softmax and top-k, so each token goes to its best k of the
        other experts, weighted by a softmax over those (see models/experts.py). Scoped like `mask_heads`."""
        with experts_masked(self.network, experts):
            yield self

    def prune_heads(self, heads: HeadSpec) -> "WorkbenchModel":
        """A new model with these heads physically removed (original head numbers), in any stack."""
        chosen = selected_heads(self.config, heads)
        remaining = sum(len(self.config.heads_in_layer(layer, stack)) - len(chosen.get((stack, layer), []))
                        for stack, (n_layers, _) in self.config.stacks.items() for layer in range(n_layers))
        if remaining == 0:
            raise HeadIndexError("Pruning every head of every layer would leave no attention at all; keep at least one.")
        network = copy.deepcopy(self.network)
        config = copy.deepcopy(self.config)
        for key, removed in chosen.items():
            if not removed:
                continue
            owner, attr = network.attention_owner(key)
            attn = getattr(owner, attr)
            setattr(owner, attr, attn.without_heads([attn.head_ids.index(h) for h in removed]))
            config.pruned_heads[key] = sorted(set(config.pruned_heads.get(key, [])) | set(removed))
        network.set_config(config)
        return self.derive(network, config, name=f"{self.name} (pruned)", tokenizer=copy.deepcopy(self.tokenizer))

    def derive(self, network, config: ModelConfig, **fields: Any) -> "WorkbenchModel":
        """A new model around `network` and `config` with this one's preprocessors, and `fields` (name, task,
        labels, tokenizer) set. The one way a model is made from another; the old one is never touched."""
        new = copy.copy(self)
        for attribute in _PER_MODEL:
            new.__dict__.pop(attribute, None)
        new.network = network.eval()
        new.config = config
        new.labels = dict(self.labels)
        new.hook_points = name_hook_points(network)
        for key, value in fields.items():
            setattr(new, key, value)
        return new

    # ------------------------------------------------------------------ vocabulary and task heads
    def add_tokens(self, tokens: str | Sequence[str], special: bool = False, init: str = "pieces",
                   seed: int = 0) -> "WorkbenchModel":
        """A new model whose tokenizer and embeddings know `tokens` (init: "pieces", "mean" or "random").

        What was added, and what was skipped as already known or repeated, is in the new model's
        `vocabulary_change` (see models/vocabulary.py).
        """
        grown, change = vocabulary.grow_vocabulary(self, tokens, special=special, init=init, seed=seed)
        grown.vocabulary_change = change
        # every change since loading, kept through later derives, for the model card (models/model_card.py)
        grown.vocabulary_changes = (*getattr(self, "vocabulary_changes", ()), change)
        return grown

    def with_head(self, task: str, labels: Sequence[str] | dict[int, str] | None = None,
                  seed: int = 0) -> "WorkbenchModel":
        """A new model with this body and a `task` head, loaded from the checkpoint or fresh (see models/task_heads.py)."""
        return task_heads.with_head(self, task, labels=labels, seed=seed)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | Path, card_metrics: dict[str, Any] | None = None) -> Path:
        """Write Hugging Face format: config.json, model.safetensors, the tokenizer, preprocessor and other
        files the family carries, and a README.md model card (models/model_card.py) with `card_metrics`
        ({"held-out accuracy": 0.9}) among what it states."""
        source = source_facts(self)  # before writing: saving into the source folder replaces what it says
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        family = self.family_record
        hf_config = family.hf_config(self.config)
        state = self.network.state_dict()
        head_prefix = self.network.head_path + "."
        body = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
        tensors = family.state_dict_to_hf(body, self.config)
        if self.task is not None:
            fmt = family.head(self.task)
            prefix = family.body_prefix(self.task, self.config)
            tensors = {prefix + k: v for k, v in tensors.items()}
            head_params = dict(self.network.head.named_parameters())
            embed = getattr(self.network.embed, "word", None)
            tied = fmt.tied is not None and embed is not None and head_params.get(fmt.tied) is embed.weight
            for hf_name, ours in fmt.pairs_for(self.config):
                if tied and ours == fmt.tied:
                    continue  # tied weights are restored from the embedding on load
                tensors[hf_name] = state[head_prefix + ours]
            hf_config["architectures"] = [fmt.architecture_for(self.config)]
            if fmt.tied is not None or self.modality == "text":
                hf_config["tie_word_embeddings"] = tied
            if self.labels:
                hf_config["id2label"] = {str(i): label for i, label in self.labels.items()}
                hf_config["label2id"] = {label: i for i, label in self.labels.items()}
        else:
            hf_config["architectures"] = [family.base_architecture(self.config)]
        hf_config.pop("_name_or_path", None)
        copied = self._copy_extra_files(folder)
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True))
        if self.processor is not None:
            self.processor.save(folder)
        if self.tokenizer is not None and "tokenizer.json" not in copied:
            self.tokenizer.save(folder)
        write_model_card(self, folder, card_metrics, source)
        return folder

    def _copy_extra_files(self, folder: Path) -> set[str]:
        """The family's other files (Whisper's generation config and tokenizer files), as they are in the source."""
        source = Path(self.source) if self.source else None
        if source is None or not source.is_dir() or source.resolve() == folder.resolve():
            return set()
        copied = set()
        for name in self.family_record.extra_files:
            if (source / name).exists():
                shutil.copy(source / name, folder / name)
                copied.add(name)
        return copied
