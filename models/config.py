"""One configuration dataclass for every family, read from and written to Hugging Face config.json."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ModelConfig:
    family: str                      # key in models.families.FAMILIES ("bert", "gpt2", "llama", ...)
    n_layers: int                    # transformer blocks
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
    rope_theta: float = 10000.0      # llama-type only
    attention_bias: bool = True      # q/k/v projections carry a bias
    output_bias: bool = True         # attention output projection carries a bias
    mlp_bias: bool = True
    # {layer: [original head indices removed]}: transformers 4.x's `pruned_heads` field
    pruned_heads: dict[int, list[int]] = field(default_factory=dict)
    # the Hugging Face config.json this came from, kept so save_pretrained writes every field back
    hf_config: dict[str, Any] = field(default_factory=dict)

    def heads_in_layer(self, layer: int) -> list[int]:
        """Original indices of the query heads still present in `layer`."""
        removed = set(self.pruned_heads.get(layer, []))
        return [h for h in range(self.n_heads) if h not in removed]

    @property
    def group_size(self) -> int:
        """Query heads that share one key/value head."""
        return self.n_heads // self.n_kv_heads
