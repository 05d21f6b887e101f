"""Never silently wrong: for every registered family and model type, each config key transformers' own code
reads is mapped, refused by name, or set aside as unable to change an inference forward.

The keys are read off transformers' source (tests/models/config_keys.py), so a transformers release that starts
reading a new key fails here until the family says what it does with it. Each family's own test file checks
that its refusals name the key and its value.
"""
from __future__ import annotations

import importlib

import pytest
import transformers

from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES
from tests.models.config_keys import unhandled_keys

CASES = sorted({(family.name, model_type) for family in FAMILIES.values() for model_type in family.model_types})


@pytest.mark.parametrize("family, model_type", CASES)
def test_every_key_transformers_reads_is_handled_refused_or_ignored(family, model_type):
    module = importlib.import_module(FAMILIES[family].config_from_hf.__module__)
    assert getattr(module, "READ_KEYS", None), f"{module.__name__} lists no READ_KEYS"
    missing = unhandled_keys(model_type, module)
    assert not missing, f"{family} ({model_type}): transformers reads {missing}, which the family neither maps nor refuses"


@pytest.mark.parametrize("kind, key, value", [
    ("bert", "position_embedding_type", "relative_key"),
    ("bert", "is_decoder", True),
    ("bert", "hidden_act", "mish"),
    ("vit", "pooler_act", "relu"),
    ("wav2vec2", "add_adapter", True),
    ("wav2vec2", "use_weighted_layer_sum", True),
    ("whisper", "use_weighted_layer_sum", True),
])
def test_a_refused_value_names_its_key(kind, key, value):
    hf = transformers.AutoConfig.for_model(kind).to_dict()
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=f"{key}={value!r}"):
        FAMILIES[kind].config_from_hf(hf)
