"""The core's relative position bias and bidirectional local windows, against attention written out here."""
from __future__ import annotations

import torch
from torch import nn

from models import load_model
from models.transformer import additive_mask
from tests.tiny_models import make_checkpoint


class FixedBias(nn.Module):
    """A learned (H, T, S) table read as the bias: enough to see that every layer adds the rows of its heads."""

    def __init__(self, heads: int, length: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(heads, length, length))

    def forward(self, query_length, key_length, past):
        return self.table[None, :, past:past + query_length, :key_length]


def test_bidirectional_window_sees_half_the_window_either_side():
    mask = additive_mask(torch.ones(1, 7, dtype=torch.long), causal=False, dtype=torch.float32, window=4)
    visible = (mask[0, 0] == 0).int()
    expected = torch.tensor([[int(abs(q - k) <= 2) for k in range(7)] for q in range(7)])
    assert torch.equal(visible, expected)
    # padding still hides its keys inside the window
    padded = additive_mask(torch.tensor([[1, 1, 1, 0, 0, 0, 0]]), causal=False, dtype=torch.float32, window=4)
    assert (padded[0, 0, :, 3:] < 0).all()


def test_position_bias_enters_every_layer_and_follows_pruning(tmp_path):
    make_checkpoint("bert", tmp_path)
    model = load_model(str(tmp_path))
    text = "the cat sat on the mat ."
    plain = model.run(text)
    T = plain.input_ids.shape[1]
    torch.manual_seed(0)
    model.network.position_bias = FixedBias(model.n_heads, T)
    biased = model.run(text)
    assert torch.equal(biased.extras["position_bias"], model.network.position_bias.table[None].detach())
    # layer 0's pattern is the softmax of its plain scores plus the bias
    q = model.network.blocks[0].attn
    with torch.no_grad():
        x = biased.hidden_states[0]
        B, _, _ = x.shape
        qh = q.q_proj(x).view(B, T, q.n_heads, q.d_head).transpose(1, 2)
        kh = q.k_proj(x).view(B, T, q.n_heads, q.d_head).transpose(1, 2)
        scores = qh @ kh.transpose(-1, -2) * q.scale + model.network.position_bias.table[None]
        torch.testing.assert_close(biased.attentions[0], scores.softmax(-1), atol=1e-5, rtol=0)
    assert not torch.allclose(biased.attentions[1], plain.attentions[1])
    # a pruned layer keeps the bias rows of its remaining heads: pruned equals masked
    with model.mask_heads({0: [1], 1: [0, 3]}):
        masked = model.run(text)
    pruned = model.prune_heads({0: [1], 1: [0, 3]})
    pruned.network.position_bias = model.network.position_bias
    again = pruned.run(text)
    for a, b in zip(again.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
