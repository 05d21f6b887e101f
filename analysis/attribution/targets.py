"""Which output to explain: the prediction, or a class / token a person chose, checked against the outputs."""
from __future__ import annotations

import operator
from typing import Callable

import torch

from models.errors import InputError

from .result import Target


class OutputNames:
    """Readable names of a model's outputs and the way back from a name to an index."""

    def __init__(self, name_of: Callable[[int], str], index_of: Callable[[str], int | None], kind: str) -> None:
        self.name_of = name_of
        self.index_of = index_of
        self.kind = kind  # "class" or "token"

    @classmethod
    def classes(cls, labels: dict[int, str] | None) -> "OutputNames":
        labels = labels or {}
        by_name = {label.strip().lower(): i for i, label in labels.items()}
        return cls(lambda i: labels.get(i, f"class {i}"), lambda name: by_name.get(name.strip().lower()), "class")

    @classmethod
    def tokens(cls, id_to_token: Callable[[int], str], token_to_id: Callable[[str], int | None]) -> "OutputNames":
        return cls(id_to_token, token_to_id, "token")


def resolve_target(scores: torch.Tensor, target: int | str | None, names: OutputNames,
                   position: int | None = None) -> Target:
    """The output to explain, given the model's scores (n_outputs,) on the input; None means the prediction."""
    n = scores.shape[-1]
    if target is None:
        index = int(scores.argmax())
    elif isinstance(target, str):
        index = names.index_of(target)
        if index is None:
            if names.kind == "token":
                raise InputError(f"{target!r} is not a single token of this model's vocabulary; "
                                 "give a token id, or a token as the tokenizer writes it.")
            if target.strip().lstrip("-").isdigit():
                raise InputError(f"Give the target class as a number, not the text {target!r}.")
            known = ", ".join(f"{i} {names.name_of(i)}" for i in range(min(n, 10)))
            raise InputError(f"{target!r} is not a label of this model. Labels: {known}.")
    else:
        try:
            if isinstance(target, bool):
                raise TypeError
            index = operator.index(target)
        except TypeError:
            raise InputError(f"The target must be a class number or a label name; got {target!r}.") from None
        if not 0 <= index < n:
            if names.kind == "token":
                raise InputError(f"Target {index} is out of range: the vocabulary has ids 0..{n - 1}.")
            listed = ", ".join(f"{i} ({names.name_of(i)})" for i in range(min(n, 10)))
            raise InputError(f"Target {index} is out of range: this model has {n} classes: {listed}.")
    probability = float(torch.softmax(scores.double(), dim=-1)[index])
    return Target(index=index, label=names.name_of(index), position=position, chosen=target is not None,
                  score=float(scores[index]), probability=probability)
