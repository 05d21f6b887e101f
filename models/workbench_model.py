"""The object a notebook or the app holds: run, hook, mask, prune, generate, save.

A `WorkbenchModel` wraps the network, its config and its tokenizer. Nothing here mutates the
network: masks and hooks live in this thread's context (so one cached model can serve many
Streamlit sessions), and pruning returns a new model.
"""
from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from safetensors.torch import save_file

from .config import ModelConfig
from .deferred_patterns import DEFERRED, collect
from .generation_trace import trace_from_steps
from .errors import HeadIndexError, InputError
from .families import FAMILIES
from .head_selection import HeadSpec, check_scale_shapes, head_scales_from_spec, selected_heads
from .heads import PIPELINE_TASKS, head_format, hf_body_prefix
from .hooks import HookFn, attach_hooks, name_hook_points
from .mask_context import masks_active, with_active_masks
from .tokenization import TextInput, TextTokenizer
from .trace import Trace
from .transformer import ForwardOutput, TransformerModel

# Longest input a run accepts by default, even where positions allow more: a full capture
# stores n_layers * n_heads * T^2 floats, which at 8,192 tokens would not fit in memory.
DEFAULT_MAX_TOKENS = 1024


class WorkbenchModel:
    modality = "text"          # what it reads: "text", "image" or "audio"
    is_native = True           # our own implementation (every feature); a bridged model says False

    def __init__(self, network: TransformerModel, config: ModelConfig, tokenizer: TextTokenizer | None,
                 name: str = "", task: str | None = None, labels: dict[int, str] | None = None,
                 source: str = "") -> None:
        self.network = network.eval()
        self.config = config
        self.tokenizer = tokenizer
        self.name = name
        self.task = task
        self.labels = labels or {}
        self.source = source
        self.hook_points = name_hook_points(network)

    # ------------------------------------------------------------------ facts
    @property
    def family(self) -> str:
        return self.config.family

    # ------------------------------------------------------------------ capabilities: pages ask these, never names
    @property
    def is_encoder_decoder(self) -> bool:
        return False

    @property
    def can_generate(self) -> bool:
        """`generate` works: a causal LM head (text) or a decoder (speech, text-to-text)."""
        return self.task == "causal-lm"

    @property
    def has_lm_head(self) -> bool:
        """Logits over the vocabulary at every position, so a logit lens reads every layer."""
        return self.task in ("causal-lm", "masked-lm")

    @property
    def tasks(self) -> tuple[str, ...]:
        """The pipeline tasks (models.pipeline) this model serves as it is."""
        return PIPELINE_TASKS.get(self.task or "", ())

    @property
    def stacks(self) -> tuple[str, ...]:
        """Names of the attention stacks heads are keyed by: one for encoder-only or decoder-only models."""
        return ("decoder",) if self.config.causal else ("encoder",)

    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    @property
    def n_heads(self) -> int:
        return self.config.n_heads

    @property
    def max_tokens(self) -> int:
        return min(self.config.max_positions, DEFAULT_MAX_TOKENS)

    def num_parameters(self) -> int:
        seen, total = set(), 0
        for p in self.network.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        return total

    def head_ids(self) -> list[list[int]]:
        return [list(block.attn.head_ids) for block in self.network.blocks]

    def __repr__(self) -> str:
        return (f"WorkbenchModel({self.name or self.family!r}, {self.n_layers} layers x {self.n_heads} heads, "
                f"d_model {self.config.d_model}, task {self.task})")

    # ------------------------------------------------------------------ running
    def encode(self, texts: TextInput | Sequence[TextInput], max_length: int | None = None):
        if self.tokenizer is None:
            raise InputError(f"{self.name or 'This model'} has no tokenizer; pass input_ids instead.")
        batch = [texts] if isinstance(texts, (str, tuple)) else list(texts)
        return self.tokenizer.encode_batch(batch, max_length or self.max_tokens)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                head_scales: dict[int, torch.Tensor] | None = None, capture: bool | str = True,
                cache: list[dict[str, torch.Tensor]] | None = None, read_positions: list[int] | None = None) -> ForwardOutput:
        """The network's forward with this context's head masks applied; gradients flow (no no_grad here).

        `cache` (one dict per layer, filled as it runs) keeps past keys and values for generation;
        `read_positions` computes the last layer at those positions only (TransformerModel.forward)."""
        if head_scales:
            check_scale_shapes(self.config, head_scales)
        head_scales = with_active_masks(self.network, head_scales)
        if token_type_ids is not None and getattr(self.network.embed, "token_type", None) is None:
            token_type_ids = None  # pass only what a model expects
        return self.network(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                            inputs_embeds=inputs_embeds, head_scales=head_scales, capture=capture, cache=cache,
                            read_positions=read_positions)

    @torch.no_grad()
    def run(self, texts: TextInput | Sequence[TextInput] | None = None, *, input_ids: torch.Tensor | None = None,
            attention_mask: torch.Tensor | None = None, max_length: int | None = None,
            capture: bool | str = True, **modal_inputs: Any) -> Trace:
        """Run a text, a batch, or sentence pairs; return every hidden state and attention pattern.

        `capture=False` keeps no patterns; `capture="deferred"` runs fused attention and computes the
        patterns when `trace.attentions` is first read (same numbers; see models/deferred_patterns.py)."""
        if modal_inputs:
            raise InputError(f"{self.name or self.family} takes text; it cannot take {', '.join(modal_inputs)}.")
        if input_ids is not None:
            input_ids = torch.as_tensor(input_ids, dtype=torch.long)
            input_ids = input_ids[None] if input_ids.dim() == 1 else input_ids
            if input_ids.numel() == 0:
                raise InputError("Empty input: no token ids given.")
            if int(input_ids.max()) >= self.config.vocab_size or int(input_ids.min()) < 0:
                raise InputError(f"Token ids must lie in 0..{self.config.vocab_size - 1}.")
            mask = torch.ones_like(input_ids) if attention_mask is None else torch.as_tensor(attention_mask)
            tokens = [[self.tokenizer.id_to_token(i) if self.tokenizer else str(int(i)) for i in row[: int(m.sum())]]
                      for row, m in zip(input_ids, mask)]
            encoded_types, warnings, shown = None, [], []
        else:
            if texts is None:
                raise InputError("No input: pass text (a string, a list of strings, or sentence pairs).")
            enc = self.encode(texts, max_length)
            input_ids, mask, tokens = enc.input_ids, enc.attention_mask, enc.tokens
            encoded_types, warnings = enc.token_type_ids, enc.warnings
            shown = [texts] if isinstance(texts, (str, tuple)) else list(texts)
        out = self.forward(input_ids=input_ids, attention_mask=mask, token_type_ids=encoded_types, capture=capture)
        hidden = list(out.resid)
        hidden[-1] = out.final  # transformers' last hidden state is after the final norm
        return Trace(
            tokens=tokens, input_ids=input_ids, attention_mask=mask, hidden_states=tuple(hidden),
            attentions=collect(out.attentions), resid_final=out.resid_final, logits=out.logits,
            token_type_ids=encoded_types, pooled=out.extras.get("pooled"), head_ids=self.head_ids(),
            warnings=warnings, texts=shown, model_name=self.name,
        )

    @torch.no_grad()
    def generate(self, text: str, max_new_tokens: int = 20) -> list[int]:
        """Greedy continuation: the ids of the new tokens. Past keys and values are cached, so each
        step runs only the newest token (masks active in this context apply to every step)."""
        new, _ = self._decode(self.encode(text).input_ids, max_new_tokens, capture=False)
        return new

    @torch.no_grad()
    def generate_traced(self, text: str, max_new_tokens: int = 20) -> tuple[list[int], Trace]:
        """`generate`, and the trace of prompt + continuation assembled from the decoding steps (one extra
        one-token step runs the last new token; see models/generation_trace.py). Patterns are deferred."""
        encoded = self.encode(text)
        new, steps = self._decode(encoded.input_ids, max_new_tokens, capture=DEFERRED)
        ids = encoded.input_ids[0].tolist() + new
        trace = trace_from_steps(self, ids, steps)
        if trace is None:  # a hook on the patterns saw them step by step: run the whole text once more
            trace = self.run(input_ids=torch.tensor([ids]), capture=DEFERRED)
        trace.texts, trace.warnings = [text], list(encoded.warnings)
        return new, trace

    def _decode(self, ids: torch.Tensor, max_new_tokens: int,
                capture: bool | str) -> tuple[list[int], list[ForwardOutput]]:
        """Greedy steps from the prompt `ids` (1, T); with capture, every step's output is kept and the last
        new token is run too."""
        if self.task != "causal-lm":
            raise InputError(f"{self.name or self.family} has no language-modelling head to generate with.")
        cache: list[dict[str, torch.Tensor]] = [{} for _ in self.network.blocks]
        new: list[int] = []
        steps: list[ForwardOutput] = []
        for _ in range(min(max_new_tokens, self.config.max_positions - ids.shape[1])):
            out = self.forward(input_ids=ids, capture=capture, cache=cache)  # logits (1, T, vocab)
            if capture:
                steps.append(out)
            next_id = int(out.logits[0, -1].argmax())
            new.append(next_id)
            ids = torch.tensor([[next_id]])  # the cache holds everything before it
            if next_id == self.config.eos_token_id:
                break
        if capture:
            steps.append(self.forward(input_ids=ids, capture=capture, cache=cache))
        return new, steps

    # ------------------------------------------------------------------ hooks and head surgery
    @contextlib.contextmanager
    def hooks(self, hooks: dict[str, HookFn] | list[tuple[str, HookFn]]) -> Iterator["WorkbenchModel"]:
        """Run hook functions at named hook points inside the `with` body only."""
        with attach_hooks(self.hook_points, hooks):
            yield self

    @contextlib.contextmanager
    def mask_heads(self, spec: HeadSpec) -> Iterator["WorkbenchModel"]:
        """Zero (or scale) heads' outputs before the output projection, as transformers 4.x `head_mask`."""
        with masks_active(self.network, head_scales_from_spec(self.config, spec)):
            yield self

    def prune_heads(self, heads: dict[int, list[int]]) -> "WorkbenchModel":
        """A new model with these heads physically removed (original head numbers)."""
        heads = selected_heads(self.config, heads)
        remaining = sum(len(self.config.heads_in_layer(l)) - len(set(heads.get(l, []))) for l in range(self.n_layers))
        if remaining == 0:
            raise HeadIndexError("Pruning every head of every layer would leave no attention at all; keep at least one.")
        network = copy.deepcopy(self.network)
        config = copy.deepcopy(self.config)
        for layer, chosen in heads.items():
            if not chosen:
                continue
            attn = network.blocks[layer].attn
            local = [attn.head_ids.index(h) for h in set(chosen)]
            network.blocks[layer].attn = attn.without_heads(local)
            config.pruned_heads[layer] = sorted(set(config.pruned_heads.get(layer, [])) | set(chosen))
        network.cfg = config
        return WorkbenchModel(network, config, copy.deepcopy(self.tokenizer), name=f"{self.name} (pruned)",
                              task=self.task, labels=dict(self.labels), source=self.source)

    # ------------------------------------------------------------------ vocabulary and task heads
    def add_tokens(self, tokens: str | Sequence[str], special: bool = False, init: str = "pieces",
                   seed: int = 0) -> "WorkbenchModel":
        """A new model whose tokenizer and embeddings know `tokens` (init: "pieces", "mean" or "random").

        What was added, and what was skipped as already known or repeated, is in the new model's
        `vocabulary_change` (see models/vocabulary.py).
        """
        from .vocabulary import grow_vocabulary
        grown, change = grow_vocabulary(self, tokens, special=special, init=init, seed=seed)
        grown.vocabulary_change = change
        return grown

    def with_head(self, task: str, labels: Sequence[str] | dict[int, str] | None = None,
                  seed: int = 0) -> "WorkbenchModel":
        """A new model with this body and a `task` head, loaded from the checkpoint or fresh (see models/task_heads.py)."""
        from .task_heads import with_head
        return with_head(self, task, labels=labels, seed=seed)

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | Path) -> Path:
        """Write Hugging Face format: config.json, model.safetensors, tokenizer files."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        family = FAMILIES[self.config.family]
        hf_config = family.config_to_hf(self.config)
        state = {k: v for k, v in self.network.state_dict().items()}
        body = {k: v for k, v in state.items() if not k.startswith("head.")}
        tensors = family.state_dict_to_hf(body, self.config)
        embed_weight = self.network.embed.word.weight
        if self.task is not None:
            fmt = head_format(self.task, self.config.family)
            prefix = hf_body_prefix(self.task, self.config, family.hf_prefix(self.config))
            tensors = {prefix + k: v for k, v in tensors.items()}
            head_params = dict(self.network.head.named_parameters())
            for hf_name, ours in fmt.pairs:
                if fmt.tied == ours and head_params[ours] is embed_weight:
                    continue  # tied weights are restored from the embedding on load
                tensors[hf_name] = state[f"head.{ours}"]
            hf_config["architectures"] = [fmt.architecture]
            hf_config["tie_word_embeddings"] = fmt.tied is not None and head_params.get(fmt.tied) is embed_weight
            if self.labels:
                hf_config["id2label"] = {str(i): label for i, label in self.labels.items()}
                hf_config["label2id"] = {label: i for i, label in self.labels.items()}
        else:
            hf_config["architectures"] = [_base_architecture(hf_config)]
        hf_config.pop("_name_or_path", None)
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(folder / "model.safetensors"),
                  metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True))
        if self.tokenizer is not None:
            self.tokenizer.save(folder)
        return folder


def _base_architecture(hf_config: dict) -> str:
    names = {"bert": "BertModel", "roberta": "RobertaModel", "xlm-roberta": "XLMRobertaModel",
             "distilbert": "DistilBertModel", "gpt2": "GPT2Model", "llama": "LlamaModel",
             "mistral": "MistralModel", "qwen2": "Qwen2Model"}
    return names.get(hf_config.get("model_type", ""), (hf_config.get("architectures") or ["PreTrainedModel"])[0])
