"""`WorkbenchModel` for image and audio encoders (ViT, Wav2Vec2): the same run, masks, hooks, pruning.

The network is a `TransformerModel` whose embedding module makes the sequence (patches or audio
frames) from `pixel_values` or `input_values`; everything after the embedding is shared with the
text families. A trace has one label per position ("[CLS]", "patch 2,3", "0.42 s") in place of
tokens, and `input_ids` filled with -1: there are no token ids.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .deferred_patterns import collect
from .errors import InputError
from .families import FAMILIES
from .heads import head_format
from .modal_family import MODAL_FAMILIES, ModalFamily
from .trace import Trace
from .transformer import ForwardOutput
from .mask_context import with_active_masks
from .workbench_model import WorkbenchModel


class ModalWorkbenchModel(WorkbenchModel):
    def __init__(self, network, config, tokenizer, processor: Any, spec: ModalFamily, name: str = "",
                 task: str | None = None, labels: dict[int, str] | None = None, source: str = "") -> None:
        super().__init__(network, config, tokenizer, name=name, task=task, labels=labels, source=source)
        self.processor = processor
        self.spec = spec
        self.modality = spec.modality

    def __repr__(self) -> str:
        return (f"WorkbenchModel({self.name or self.family!r}, {self.modality}, {self.n_layers} layers x "
                f"{self.n_heads} heads, d_model {self.config.d_model}, task {self.task})")

    @property
    def can_generate(self) -> bool:
        return False

    @property
    def has_lm_head(self) -> bool:
        return False

    @property
    def sampling_rate(self) -> int | None:
        return getattr(self.processor, "sampling_rate", None)

    # ------------------------------------------------------------------ running
    def encode(self, texts, max_length=None):
        raise InputError(f"{self.name or self.family} reads {self.modality}, not text.")

    def prepare(self, images=None, audio=None, sampling_rate: int | None = None) -> Any:
        """Preprocess images or audio into network inputs (see the family's `prepare`)."""
        given = images if self.modality == "image" else audio
        other = audio if self.modality == "image" else images
        if other is not None:
            raise InputError(f"{self.name or self.family} reads {self.modality}; pass "
                             f"{'images=' if self.modality == 'image' else 'audio='} instead.")
        if given is None:
            raise InputError(f"No input: pass {'images=[...]' if self.modality == 'image' else 'audio=[...]'} "
                             f"to {self.name or self.family}.")
        batch = list(given) if isinstance(given, (list, tuple)) else [given]
        if not batch:
            raise InputError(f"No {self.modality} given.")
        return self.spec.prepare(self, batch, sampling_rate)

    def forward(self, pixel_values=None, input_values=None, attention_mask=None,
                head_scales: dict[int, torch.Tensor] | None = None, capture: bool | str = True, **_: Any) -> ForwardOutput:
        """The network's forward with this context's head masks applied; gradients flow."""
        head_scales = with_active_masks(self.network, head_scales)
        return self.network(pixel_values=pixel_values, input_values=input_values, attention_mask=attention_mask,
                            head_scales=head_scales, capture=capture)

    @torch.no_grad()
    def run(self, texts=None, *, images=None, audio=None, sampling_rate: int | None = None,
            capture: bool | str = True, **kwargs: Any) -> Trace:
        """Run images (`images=[...]`) or audio (`audio=[...]`, `sampling_rate=`); every state and pattern."""
        if texts is not None:
            raise InputError(f"{self.name or self.family} reads {self.modality}, not text: pass "
                             f"{'images=' if self.modality == 'image' else 'audio='}.")
        unknown = set(kwargs) - {"max_length", "input_ids", "attention_mask"}
        if unknown or kwargs.get("input_ids") is not None:
            raise InputError(f"{self.name or self.family} takes {self.modality}; it cannot take "
                             f"{', '.join(sorted(unknown) or ['input_ids'])}.")
        prepared = self.prepare(images=images, audio=audio, sampling_rate=sampling_rate)
        out = self.forward(**prepared.inputs, capture=capture)
        mask = out.extras["attention_mask"]
        hidden = list(out.resid)
        hidden[-1] = out.final
        B, T = mask.shape
        return Trace(
            tokens=prepared.tokens, input_ids=torch.full((B, T), -1, dtype=torch.long), attention_mask=mask,
            hidden_states=tuple(hidden), attentions=collect(out.attentions), resid_final=out.resid_final,
            logits=out.logits, pooled=out.extras.get("pooled"), head_ids=self.head_ids(),
            texts=list(prepared.extras.get("sources", [])), model_name=self.name, modality=self.modality,
            extras=prepared.extras,
        )

    def generate(self, *args, **kwargs):
        raise InputError(f"{self.name or self.family} does not generate text.")

    # ------------------------------------------------------------------ head surgery and saving
    def prune_heads(self, heads: dict[int, list[int]]) -> "ModalWorkbenchModel":
        pruned = super().prune_heads(heads)
        return type(self)(pruned.network, pruned.config, pruned.tokenizer, self.processor, self.spec,
                          name=pruned.name, task=self.task, labels=dict(self.labels), source=self.source)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Hugging Face format: config.json, model.safetensors, preprocessor_config.json (and tokenizer files)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        family = FAMILIES[self.config.family]
        hf_config = family.config_to_hf(self.config)
        state = self.network.state_dict()
        tensors = family.state_dict_to_hf({k: v for k, v in state.items() if not k.startswith("head.")}, self.config)
        if self.task is not None:
            fmt = head_format(self.task, self.config.family)
            prefix = family.hf_prefix(self.config)
            tensors = {prefix + k: v for k, v in tensors.items()}
            tensors.update({hf_name: state[f"head.{ours}"] for hf_name, ours in fmt.pairs})
            hf_config["architectures"] = [fmt.architecture]
            if self.labels:
                hf_config["id2label"] = {str(i): label for i, label in self.labels.items()}
                hf_config["label2id"] = {label: i for i, label in self.labels.items()}
        else:
            hf_config["architectures"] = [self.spec.base_architecture]
        hf_config.pop("_name_or_path", None)
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True))
        if self.processor is not None:
            self.processor.save(folder)
        if self.tokenizer is not None:
            self.tokenizer.save(folder)
        return folder


def modal_spec(model_type: str) -> ModalFamily:
    return MODAL_FAMILIES[model_type]
