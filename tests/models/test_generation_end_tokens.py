"""Several end tokens (Llama 3's configs list them): any one ends a row of the shared greedy loop."""
from __future__ import annotations

import torch

from models.generation import greedy_decode


def _scripted(choices):
    """A step that picks choices[row][step] (as one-hot logits over 10 ids)."""
    count = {"step": 0}

    def step(ids):
        picks = torch.tensor([row[count["step"]] for row in choices])
        count["step"] += 1
        return torch.nn.functional.one_hot(picks, 10).float(), None
    return step


def test_any_of_several_end_tokens_ends_its_row():
    choices = [[3, 7, 5, 5], [4, 4, 8, 5], [1, 2, 3, 4]]
    new, _, _ = greedy_decode(_scripted(choices), torch.zeros(3, 1, dtype=torch.long), 4, [7, 8])
    assert new == [[3, 7], [4, 4, 8], [1, 2, 3, 4]]
    one, _, _ = greedy_decode(_scripted(choices), torch.zeros(3, 1, dtype=torch.long), 4, 7)
    assert one == [[3, 7], [4, 4, 8, 5], [1, 2, 3, 4]]
    none, _, _ = greedy_decode(_scripted(choices), torch.zeros(3, 1, dtype=torch.long), 4, None)
    assert none == choices
