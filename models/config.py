"""One configuration dataclass for every family, read from and written to Hugging Face config.json.

Heads are keyed by `(stack, layer)` everywhere. A decoder-only or encoder-only model has one
stack ("decoder" or "encoder"); an encoder-decoder has three: "encoder" (its self-attention),
"decoder" (the decoder's self-attention) and "cross" (the decoder's attention to the encoder).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HeadKey = tuple[str, int]  # (stack, layer)


@dataclass
class ModelConfig:
    family: str                      # key in models.families.FAMILIES ("bert", "gpt2", "llama", ...)
    n_layers: int                    # transformer blocks of the main stack
    n_heads: int                     # query heads per layer before any pruning
    n_kv_heads: int                  # key/value heads (== n_heads unless grouped-query attention)
    d_model: int                     # width of the residual stream
    d_head: int                      # width of one head
    d_mlp: int                       # hidden width of the MLP
    vocab_size: int
    max_positions: int               # longest sequence the position scheme supports
    norm_eps: float = 1e-5
    activation: str = "gelu"         # "gelu" (erf), "gelu_new" (tanh), "silu", "relu"
    causal: bool = False             # decoder-only LMs attend to the past only
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    tie_word_embeddings: bool = False
    rope_theta: float = 10000.0      # rotary families only
    attention_bias: bool = True      # q/k/v projections carry a bias
    output_bias: bool = True         # attention output projection carries a bias
    mlp_bias: bool = True
    # ---- variants, each switched on by a family's config mapping; the defaults are plain pre-norm attention
    rotary_dim: int | None = None    # rotary on the first `rotary_dim` dims of each head (partial rotary); None: all
    rotary_interleaved: bool = False # GPT-J: rotate pairs (0, 1), (2, 3), ... instead of the two halves
    rope_scaling: dict[str, Any] | None = None   # transformers' rope_scaling, read by models/rotary.py
    rope_theta_local: float | None = None        # Gemma 3: the base of local (sliding-window) layers
    attention_scale: float | None = None         # replaces 1/sqrt(d_head) (Gemma 2 query_pre_attn_scalar, Granite)
    attention_scales: tuple[float, ...] | None = None  # per layer, overrides attention_scale (GPT-2's inverse layer idx)
    attn_softcap: float | None = None            # Gemma 2: scores = cap * tanh(scores / cap)
    qk_norm: bool = False                        # Qwen 3, Gemma 3: a norm over each query and key head
    sliding_window: int | None = None            # local layers: causal, keys < this many back; else |q-k| <= it // 2
    layer_types: tuple[str, ...] | None = None   # per layer "full_attention" or "sliding_attention"; None: all full
    embed_scale: float | None = None             # Gemma: sqrt(d_model); Granite: embedding_multiplier
    residual_scale: float = 1.0                  # Granite: residual_multiplier on each sublayer's output
    logits_scale: float | None = None            # Granite: logits divided by logits_scaling
    final_softcap: float | None = None           # Gemma 2: logits = cap * tanh(logits / cap)
    # {(stack, layer): [original head indices removed]}; a one-stack model writes it as transformers 4.x's
    # `pruned_heads` {layer: heads} (see pruned_heads_from_hf / pruned_heads_to_hf)
    pruned_heads: dict[HeadKey, list[int]] = field(default_factory=dict)
    # other stacks' (n_layers, n_heads), for encoder-decoders: {"encoder": (4, 6), "cross": (4, 6)}
    other_stacks: dict[str, tuple[int, int]] = field(default_factory=dict)
    # the main stack's name when it is neither "encoder" nor "decoder" (CLIP's image tower is "vision")
    main_stack_name: str | None = None
    # the Hugging Face config.json this came from, kept so save_pretrained writes every field back
    hf_config: dict[str, Any] = field(default_factory=dict)

    @property
    def main_stack(self) -> str:
        """The stack an integer layer key means: the decoder's self-attention if causal, else the encoder's."""
        if self.main_stack_name:
            return self.main_stack_name
        return "decoder" if self.causal else "encoder"

    @property
    def stacks(self) -> dict[str, tuple[int, int]]:
        """Every stack's (n_layers, n_heads), main stack first."""
        return {self.main_stack: (self.n_layers, self.n_heads), **self.other_stacks}

    def heads_in_layer(self, layer: int, stack: str | None = None) -> list[int]:
        """Original indices of the query heads still present in `layer` of `stack` (the main one by default)."""
        stack = stack or self.main_stack
        removed = set(self.pruned_heads.get((stack, layer), []))
        return [h for h in range(self.stacks[stack][1]) if h not in removed]

    def layer_type(self, layer: int) -> str:
        return self.layer_types[layer] if self.layer_types else "full_attention"

    @property
    def group_size(self) -> int:
        """Query heads that share one key/value head."""
        return self.n_heads // self.n_kv_heads


def pruned_heads_from_hf(hf: dict[str, Any], stack: str) -> dict[HeadKey, list[int]]:
    """transformers' `pruned_heads` {"2": [0, 5]} of a one-stack model, keyed by (stack, layer)."""
    return {(stack, int(layer)): sorted(int(h) for h in heads) for layer, heads in (hf.get("pruned_heads") or {}).items()}


def pruned_heads_to_hf(cfg: ModelConfig) -> dict[str, list[int]]:
    """The inverse of `pruned_heads_from_hf`, transformers 4.x's form ({"layer": heads})."""
    return {str(layer): list(heads) for (stack, layer), heads in sorted(cfg.pruned_heads.items())}


# Families transformers cannot prune (Whisper, T5, BART, Marian, CLIP), or whose `pruned_heads` takes integer layers
# of one stack only, keep every stack's pruned heads in config.json under this key: {"encoder.3": [0, 5], ...}
STACKED_PRUNED_KEY = "workbench_pruned_heads"


def stacked_pruned_heads_from_hf(hf: dict[str, Any], default_stack: str) -> dict[HeadKey, list[int]]:
    """{(stack, layer): heads} from STACKED_PRUNED_KEY; a bare layer number means `default_stack`."""
    pruned = {}
    for key, heads in (hf.get(STACKED_PRUNED_KEY) or {}).items():
        stack, _, layer = str(key).rpartition(".")
        pruned[(stack or default_stack, int(layer))] = sorted(int(h) for h in heads)
    return pruned


def hf_config_with_stacked_pruned_heads(cfg: ModelConfig) -> dict[str, Any]:
    """`cfg.hf_config` with STACKED_PRUNED_KEY brought up to date (absent when nothing is pruned)."""
    hf = {k: v for k, v in cfg.hf_config.items() if k != STACKED_PRUNED_KEY}
    if cfg.pruned_heads:
        hf[STACKED_PRUNED_KEY] = {f"{stack}.{layer}": list(v) for (stack, layer), v in sorted(cfg.pruned_heads.items())}
    return hf
