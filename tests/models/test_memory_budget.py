"""A checkpoint too large for the memory left is refused before anything is allocated, with a clear message."""
from __future__ import annotations

import json
import resource

import pytest
from safetensors import safe_open

from models import load_model
from models.errors import WeightFileError
from models.memory_budget import check_fits, config_parameters, weight_file_bytes
from tests.tiny_models import make_checkpoint


def test_the_estimate_covers_the_real_model(tmp_path):
    make_checkpoint("llama", tmp_path)
    model = load_model(str(tmp_path))
    assert config_parameters(model.config) >= model.num_parameters()
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:  # the header's sizes, read for real
        stored = sum(f.get_tensor(k).numel() * f.get_tensor(k).element_size() for k in f.keys())
    assert weight_file_bytes(tmp_path) == stored


def test_ten_thousand_layers_with_a_tiny_weight_file_are_refused_before_allocating(tmp_path):
    make_checkpoint("llama", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(num_hidden_layers=10_000, hidden_size=4096, intermediate_size=11008, num_attention_heads=32,
                  num_key_value_heads=32, head_dim=128)
    (tmp_path / "config.json").write_text(json.dumps(config))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB
    with pytest.raises(WeightFileError, match="would need about .* GB to load"):
        load_model(str(tmp_path))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # peak grew by under 200 MB


def test_a_server_limit_is_named_in_the_message(tmp_path):
    make_checkpoint("gpt2", tmp_path)
    model = load_model(str(tmp_path))
    with pytest.raises(WeightFileError, match="allowed"):
        check_fits(model.config, tmp_path, "tiny", limit=1000)
    assert check_fits(model.config, tmp_path, "tiny", limit=10**9) > 0


@pytest.mark.parametrize("key, value, message", [
    ("num_hidden_layers", -1, "-1 layers"), ("num_attention_heads", 0, "0 heads"),
    ("num_key_value_heads", 3, "cannot share 3 key/value heads"),
    ("hidden_size", "wide", "config.json"), ("vocab_size", None, "config.json"),
])
def test_impossible_shapes_are_refused(tmp_path, key, value, message):
    make_checkpoint("llama", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[key] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightFileError, match=message):
        load_model(str(tmp_path))


@pytest.mark.parametrize("content, message", [("[1, 2]", "JSON list"), ("{not json", "not valid JSON")])
def test_a_config_that_is_not_an_object_is_refused(tmp_path, content, message):
    make_checkpoint("gpt2", tmp_path)
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(WeightFileError, match=message):
        load_model(str(tmp_path))
