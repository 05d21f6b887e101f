"""ALBERT (Lan et al. 2020, "ALBERT: A Lite BERT"): a BERT-shaped post-norm encoder with two savings.

- A factorised embedding: tokens are embedded at `embedding_size` (E), then one linear map
  (`embedding_hidden_mapping_in`) takes them to the hidden width d.
- Shared layers: `num_hidden_groups` groups of `inner_group_num` layers hold every weight; the stack applies
  them `num_hidden_layers` times (application i runs group int(i / (L / G)), all its inner layers in turn).

Here every application of a shared layer is a layer of its own (its own hook points and head scales, so
masking a head of layer 2 masks that application only), while the weights are the same modules throughout.
With one layer per group (every released checkpoint) the trace has transformers' n_layers + 1 hidden states
and n_layers patterns; with `inner_group_num` k > 1 it has k times as many layers as transformers reports
hidden states (transformers keeps one state per group application: ours[::k]), and the same patterns.

Pruning removes weights, and the weights are shared, so one pruned head leaves every application of its layer:
`prune_heads` must name the same heads in each application of a shared layer (pruned then equals masked), and
a saved pruned model writes transformers 4.x's `pruned_heads` keyed by shared layer (AlbertModel._prune_heads),
which transformers loads with equal logits. Other pruning specs are refused by name, never applied to part.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig
from ..encoder_heads import projected_lm_head
from ..errors import HeadIndexError, UnsupportedArchitectureError
from ..heads import HeadFormat, PooledClassificationHead, Pooler, linear_pairs, question_answering_head, \
    token_classification_head
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename

# chunk_size_feed_forward: transformers may split the MLP over positions, which gives the same numbers
IGNORED_KEYS = ("chunk_size_feed_forward",)
READ_KEYS = (
    "embedding_size", "hidden_act", "hidden_size", "inner_group_num", "intermediate_size", "layer_norm_eps",
    "max_position_embeddings", "num_attention_heads", "num_hidden_groups", "num_hidden_layers", "pad_token_id",
    "position_embedding_type", "type_vocab_size", "vocab_size",
)


def shared_layers(hf: dict[str, Any]) -> list[int]:
    """For each of our layers (applications), the shared layer it runs, numbered as transformers' `pruned_heads`
    numbers them: group * inner_group_num + inner index (AlbertModel._prune_heads)."""
    n_layers, groups, inner = hf["num_hidden_layers"], hf.get("num_hidden_groups", 1), hf.get("inner_group_num", 1)
    # transformers' own float arithmetic (AlbertTransformer.forward), so uneven splits pick the same group
    return [int(i / (n_layers / groups)) * inner + j for i in range(n_layers) for j in range(inner)]


def _albert_config(hf: dict[str, Any]) -> ModelConfig:
    if "AlbertForPreTraining" in (hf.get("architectures") or []):
        raise UnsupportedArchitectureError(
            "AlbertForPreTraining checkpoints carry a sentence-order prediction head, which the workbench does not "
            "implement. Load a checkpoint saved as AlbertForMaskedLM or AlbertModel instead (the body and the "
            "masked-LM head are the same weights).")
    refuse_unsupported(hf, "ALBERT", hidden_act=lambda v: v in ACTIVATIONS,
                       position_embedding_type=lambda v: v in (None, "absolute"),  # relative_key*: not implemented
                       # a group no application runs would be dropped on save
                       num_hidden_groups=lambda v: 1 <= v <= hf["num_hidden_layers"],
                       # transformers' output projection is d x d, so heads must tile the hidden width
                       num_attention_heads=lambda v: hf["hidden_size"] % v == 0)
    n_heads = hf["num_attention_heads"]
    shared = shared_layers(hf)
    # transformers 4.x numbers pruned heads by shared layer; each application of it lacks them
    given = {int(s): sorted(int(h) for h in heads) for s, heads in (hf.get("pruned_heads") or {}).items()}
    unknown = sorted(set(given) - set(shared))
    if unknown:
        raise UnsupportedArchitectureError(
            f"ALBERT pruned_heads names shared layers {unknown}, which this config does not have "
            f"(it has {sorted(set(shared))}); transformers could not load it either.")
    pruned = {("encoder", layer): given[s] for layer, s in enumerate(shared) if given.get(s)}
    return ModelConfig(
        family="albert", n_layers=len(shared), n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["hidden_size"], d_head=hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
        norm_eps=hf.get("layer_norm_eps", 1e-12), activation=hf.get("hidden_act", "gelu_new"),
        pad_token_id=hf.get("pad_token_id", 0), tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned, hf_config=dict(hf),
    )


def _albert_config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    """config.json: the source's fields, the vocabulary size, and pruned heads keyed by shared layer."""
    pruned: dict[str, list[int]] = {}
    for layer, s in enumerate(shared_layers(cfg.hf_config)):
        heads = cfg.pruned_heads.get(("encoder", layer))
        if heads:
            pruned[str(s)] = list(heads)  # equal in every application (SharedLayerEncoder.set_config checks)
    return {**cfg.hf_config, "pruned_heads": pruned, "vocab_size": cfg.vocab_size}


class FactorisedEmbeddings(nn.Module):
    """word + position + segment embeddings at width E, LayerNorm, then the linear map to d (ALBERT)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hf = cfg.hf_config
        d_embed = hf.get("embedding_size", 128)
        self.word = nn.Embedding(cfg.vocab_size, d_embed)
        self.position = nn.Embedding(cfg.max_positions, d_embed)
        self.token_type = nn.Embedding(hf.get("type_vocab_size", 2), d_embed)
        self.norm = nn.LayerNorm(d_embed, eps=cfg.norm_eps)
        self.project = nn.Linear(d_embed, cfg.d_model)  # transformers' encoder.embedding_hidden_mapping_in

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        x = inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, E)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(positions)
        x = self.norm(x + self.token_type(token_type_ids) + self.position(positions))  # (B, T, E)
        return self.project(x)  # (B, T, d)


# the modules one application of a shared layer takes from the first application of that layer (not the hook
# points, nor the Attention and MLP objects that hold them, so each application stays its own hook path)
_SHARED_MODULES = ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj", "ln1", "mlp.fc_in", "mlp.fc_out",
                   "ln2")


class SharedLayerEncoder(TransformerModel):
    """A post-norm encoder whose layers are applications of fewer shared layers (`shared[layer]`)."""

    def __init__(self, cfg: ModelConfig, embed: nn.Module, shared: list[int]) -> None:
        super().__init__(cfg, embed, norm_kind="layer", norm_first=False, gated_mlp=False, uses_rotary=False,
                         final_norm=False)
        self.shared = shared
        self.tie_shared_layers()

    def first_application(self) -> dict[int, int]:
        """Shared layer -> the first of our layers that runs it (whose modules the others reuse)."""
        first: dict[int, int] = {}
        for layer, s in enumerate(self.shared):
            first.setdefault(s, layer)
        return first

    def tie_shared_layers(self) -> None:
        first = self.first_application()
        for layer, s in enumerate(self.shared):
            if first[s] == layer:
                continue
            source, block = self.blocks[first[s]], self.blocks[layer]
            for path in _SHARED_MODULES:
                parent, _, name = path.rpartition(".")
                setattr(block.get_submodule(parent) if parent else block, name, source.get_submodule(path))

    def set_config(self, cfg: ModelConfig) -> None:
        """After pruning (models/workbench_model.py): refuse heads pruned from some applications of a shared layer
        and not others, then share the pruned modules again (pruning copied them per application)."""
        for s in sorted(set(self.shared)):
            layers = [layer for layer, t in enumerate(self.shared) if t == s]
            pruned = {layer: sorted(cfg.pruned_heads.get((cfg.main_stack, layer), [])) for layer in layers}
            if len({tuple(h) for h in pruned.values()}) > 1:
                raise HeadIndexError(
                    f"ALBERT shares one layer's weights between layers {layers}, so pruning a head removes it from "
                    f"all of them; the request would leave {pruned}. Prune the same heads in each of layers "
                    f"{layers}, or mask heads (mask_heads) to silence one layer alone.")
        super().set_config(cfg)
        self.tie_shared_layers()


def _build(cfg: ModelConfig) -> SharedLayerEncoder:
    return SharedLayerEncoder(cfg, FactorisedEmbeddings(cfg), shared_layers(cfg.hf_config))


# our module -> the checkpoint's, per shared layer
_ALBERT_LAYER = {"attn.q_proj": "attention.query", "attn.k_proj": "attention.key", "attn.v_proj": "attention.value",
                 "attn.o_proj": "attention.dense", "ln1": "attention.LayerNorm", "mlp.fc_in": "ffn",
                 "mlp.fc_out": "ffn_output", "ln2": "full_layer_layer_norm"}


def _albert_pairs(cfg: ModelConfig, has_pooler: bool, every_application: bool) -> list[tuple[str, str]]:
    """(HF name, our name) of every body weight. Reading, each application takes its shared layer's weights;
    writing, the first application of each shared layer gives them (the others hold the same tensors)."""
    pairs = [("embeddings.word_embeddings.weight", "embed.word.weight"),
             ("embeddings.position_embeddings.weight", "embed.position.weight"),
             ("embeddings.token_type_embeddings.weight", "embed.token_type.weight"),
             ("embeddings.LayerNorm.weight", "embed.norm.weight"), ("embeddings.LayerNorm.bias", "embed.norm.bias"),
             *linear_pairs("encoder.embedding_hidden_mapping_in", "embed.project")]
    inner = cfg.hf_config.get("inner_group_num", 1)
    first = {}
    for layer, s in enumerate(shared_layers(cfg.hf_config)):
        first.setdefault(s, layer)
        if every_application or first[s] == layer:
            hf = f"encoder.albert_layer_groups.{s // inner}.albert_layers.{s % inner}."
            pairs += layer_pairs(hf, f"blocks.{layer}.", _ALBERT_LAYER)
    if has_pooler:
        pairs += [("pooler.weight", "pooler.dense.weight"), ("pooler.bias", "pooler.dense.bias")]
    return pairs


def _albert_from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, _albert_pairs(cfg, "pooler.weight" in sd, every_application=True))


def _albert_to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    pairs = _albert_pairs(cfg, "pooler.dense.weight" in sd, every_application=False)
    return rename(sd, [(ours, hf) for hf, ours in pairs])


_ALBERT_HEADS = {
    # dense (d -> E) -> hidden_act -> LayerNorm(E) -> decoder tied to the E-wide word embedding, plus its bias
    "masked-lm": projected_lm_head("AlbertForMaskedLM", dense="predictions.dense", norm="predictions.LayerNorm",
                                   decoder="predictions.decoder", bias="predictions.bias",
                                   d_embed=lambda cfg: cfg.hf_config.get("embedding_size", 128)),
    # the pooler (albert.pooler: dense + tanh on the first token), then the classifier
    "sequence-classification": HeadFormat("AlbertForSequenceClassification",
                                          lambda cfg, n: PooledClassificationHead(cfg, n),
                                          linear_pairs("classifier", "classifier")),
    "token-classification": token_classification_head("AlbertForTokenClassification"),
    "question-answering": question_answering_head("AlbertForQuestionAnswering"),
}

register(Family(
    name="albert", model_types=("albert",), config_from_hf=_albert_config, build=_build,
    state_dict_from_hf=_albert_from_hf, state_dict_to_hf=_albert_to_hf, hf_prefix=lambda cfg: "albert.",
    base_architecture=lambda cfg: "AlbertModel", config_to_hf=_albert_config_to_hf, heads=_ALBERT_HEADS,
    default_task="masked-lm", make_pooler=lambda cfg: Pooler(cfg.d_model),
))
