"""The config keys transformers reads for one model type: its modeling and configuration code, and the rope
utilities when the modeling code builds its rotary table with them. A family's test asserts each is handled
(mapped or refused, READ_KEYS) or read without changing an inference forward (IGNORED_KEYS), so a transformers
release that starts reading a new key fails the test until the family says what it does with it."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import transformers

# the config machinery and output switches: never part of what a forward computes
INFRASTRUCTURE = {"_attn_implementation", "output_attentions", "output_hidden_states", "use_return_dict",
                  "get_text_config", "_name_or_path"}
DROPOUT = re.compile(r"dropout|_pdrop$")
READS = re.compile(r"\bconfig\.([A-Za-z_]\w*)|getattr\(\s*(?:self\.)?config\s*,\s*\"(\w+)\"")


def keys_read(model_type: str) -> set[str]:
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
