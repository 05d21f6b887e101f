"""New models made from old ones (a new head, a grown vocabulary) keep the old one's class and extras.

Image and audio models carry a processor and a family spec besides the network; a shallow copy
of the wrapper keeps those (they are read-only) while the network, config and names are the new
ones. The old model object is never touched.
"""
from __future__ import annotations

import copy
from typing import Any

from .config import ModelConfig
from .hooks import name_hook_points
from .transformer import TransformerModel
from .workbench_model import WorkbenchModel

# attributes that describe how one particular model was made, not what it is
_PER_MODEL = ("vocabulary_change",)


def derived_model(model: WorkbenchModel, network: TransformerModel, config: ModelConfig, **fields: Any) -> WorkbenchModel:
    """A model of `model`'s class around `network` and `config`, with `fields` (name, task, labels, tokenizer) set."""
    new = copy.copy(model)
    for attribute in _PER_MODEL:
        new.__dict__.pop(attribute, None)
    new.network = network.eval()
    new.config = config
    new.hook_points = name_hook_points(network)
    for key, value in fields.items():
        setattr(new, key, value)
    return new
