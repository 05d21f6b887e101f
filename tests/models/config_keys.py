"""The config keys transformers' own code reads for a model type, so a test can assert each is handled or refused.

Keys come from `config.<key>` (and `getattr(config, "<key>")`) in modeling_<name>.py, from the rope utilities
when the modeling code builds its rotary table with them, and from the attributes configuration_<name>.py
sets. A key transformers adds in a new version makes tests/models/test_config_keys.py fail until the family
maps it, refuses it (READ_KEYS) or says why it cannot change an inference forward (IGNORED_KEYS).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import transformers

from models.errors import UnsupportedArchitectureError

# PretrainedConfig's own machinery, output switches and the training loop: none changes what a forward computes
INFRASTRUCTURE = {
    "_attn_implementation", "attn_implementation", "output_attentions", "output_hidden_states", "use_return_dict",
    "use_cache", "problem_type", "_pre_quantization_dtype", "is_decoder", "num_labels", "get_text_config",
    "initializer_range", "init_std", "gradient_checkpointing", "_name_or_path",
}
DROPOUT = re.compile(r"dropout|_pdrop$")
READS = re.compile(r"\bconfig\.([A-Za-z_]\w*)|getattr\(\s*(?:self\.)?config\s*,\s*[\"'](\w+)[\"']")


def transformers_keys(model_type: str) -> set[str]:
    """Every config key transformers' modeling and configuration code for `model_type` reads or sets."""
    config_class = type(transformers.AutoConfig.for_model(model_type))
    folder = Path(sys.modules[config_class.__module__].__file__).parent
    modeling = (folder / f"modeling_{folder.name}.py").read_text()
    sources = [modeling]
    if "ROPE_INIT_FUNCTIONS" in modeling:
        sources.append((Path(transformers.__file__).parent / "modeling_rope_utils.py").read_text())
    keys = {a or b for source in sources for a, b in READS.findall(source)}
    configuration = (folder / f"configuration_{folder.name}.py").read_text()
    keys |= set(re.findall(r"^\s+self\.(\w+)\s*=", configuration, flags=re.M))
    return {k for k in keys if k not in INFRASTRUCTURE and not k.startswith("_") and not DROPOUT.search(k)}


def unhandled_keys(model_type: str, family_module: Any) -> list[str]:
    """Keys transformers reads that the family neither maps nor refuses (READ_KEYS) nor sets aside (IGNORED_KEYS)."""
    known = set(family_module.READ_KEYS) | set(getattr(family_module, "IGNORED_KEYS", ()))
    return sorted(transformers_keys(model_type) - known)


def assert_refused(config_from_hf, hf: dict[str, Any], key: str) -> None:
    """`config_from_hf(hf)` refuses, and its message names `key` and its value."""
    with pytest.raises(UnsupportedArchitectureError) as error:
        config_from_hf(hf)
    assert f"{key}={hf[key]!r}" in str(error.value), str(error.value)
