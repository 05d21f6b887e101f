"""The config keys transformers' own code reads for a family, so a test can assert each is handled or refused.

Keys come from two places: `config.<key>` (and `getattr(config, "<key>"`) in modeling_<name>.py, and the
attributes configuration_<name>.py sets. A key transformers adds in a new version makes the family's test fail
until the family maps it, refuses it or says why it does not change the arithmetic.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import transformers

from models.errors import UnsupportedArchitectureError

# PretrainedConfig's own machinery and the training loop: none of them changes what a forward pass computes
INFRASTRUCTURE = {
    "_attn_implementation", "attn_implementation", "output_attentions", "output_hidden_states", "use_return_dict",
    "use_cache", "problem_type", "_pre_quantization_dtype", "is_decoder", "num_labels",  # num_labels: from id2label
    "initializer_range", "init_std", "gradient_checkpointing",
}


def transformers_keys(name: str) -> set[str]:
    """Every config key transformers' modeling and configuration code for model folder `name` reads or sets."""
    folder = Path(transformers.__file__).parent / "models" / name
    modeling = (folder / f"modeling_{name}.py").read_text()
    configuration = (folder / f"configuration_{name}.py").read_text()
    keys = set(re.findall(r"\bconfig\.([A-Za-z_]\w*)", modeling))
    keys |= set(re.findall(r"getattr\(\s*config\s*,\s*[\"'](\w+)[\"']", modeling))
    keys |= set(re.findall(r"^\s+self\.(\w+)\s*=", configuration, flags=re.M))
    return keys - INFRASTRUCTURE


def assert_every_key_handled(name: str, family_module: Any) -> None:
    """Each key transformers reads is in the family's READ_KEYS (mapped or refused) or IGNORED_KEYS (no arithmetic)."""
    known = set(family_module.READ_KEYS) | set(family_module.IGNORED_KEYS)
    missing = sorted(transformers_keys(name) - known)
    assert not missing, f"{name}: config keys transformers reads that the family neither maps nor refuses: {missing}"
    assert set(family_module.REFUSED_KEYS) <= set(family_module.READ_KEYS)


def assert_refused(config_from_hf, hf: dict[str, Any], key: str) -> None:
    """`config_from_hf(hf)` refuses, and its message names `key` and its value."""
    with pytest.raises(UnsupportedArchitectureError) as error:
        config_from_hf(hf)
    assert f"{key}={hf[key]!r}" in str(error.value), str(error.value)
