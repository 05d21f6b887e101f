"""Relative position buckets and the learned bias they index (Raffel et al. 2020, T5, section 2.1; MPNet).

A query at position i and a key at j share a bucket of j - i: exact for small distances, logarithmic up to
`max_distance`, and the last bucket beyond. Bidirectional (encoder) buckets give each sign half of them.
`RelativePositionBias` is the module `TransformerModel(position_bias=...)` calls once per forward.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def relative_position_bucket(relative_position: torch.Tensor, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> torch.Tensor:
    """The bucket (LongTensor, same shape) of each key-minus-query distance, as T5 and MPNet compute it."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).long() * num_buckets  # keys after the query take the upper half
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)  # a causal query sees only keys at or before it
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # the log is taken in float32 and truncated, as both reference implementations do
    large = max_exact + (torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).long()
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """A learned score bias per head and bucket: (1, H, T, S) for T queries after `past` and S keys."""

    def __init__(self, table_size: int, n_heads: int, num_buckets: int, max_distance: int,
                 bidirectional: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(table_size, n_heads)  # (buckets, H); may hold rows no bucket reaches
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional

    def forward(self, query_length: int, key_length: int, past: int) -> torch.Tensor:
        device = self.embedding.weight.device
        query = torch.arange(past, past + query_length, device=device)[:, None]  # (T, 1)
        key = torch.arange(key_length, device=device)[None, :]  # (1, S)
        buckets = relative_position_bucket(key - query, self.bidirectional, self.num_buckets, self.max_distance)
        return self.embedding(buckets).permute(2, 0, 1)[None]  # (1, H, T, S)
