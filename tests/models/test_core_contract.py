"""Bad input gets a typed, clear error; hooks and runs leave the model as they found it."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from models import (InputError, ModelNotFoundError, UnsupportedArchitectureError, WeightFileError, load_model)
from models.hooks import active_hook_count
from tests.tiny_models import make_checkpoint


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    make_checkpoint("bert", folder)
    return folder


@pytest.fixture(scope="module")
def bert(bert_folder):
    return load_model(str(bert_folder))


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(folder, target)
    return target


def test_empty_text_is_an_input_error(bert):
    for empty in ("", "   ", [], ["the cat", ""]):
        with pytest.raises(InputError, match="(?i)empty|no text"):
            bert.run(empty)


def test_text_longer_than_the_model_is_truncated_with_a_warning(bert):
    long_text = " ".join(["the cat sat on the mat ."] * 30)  # 180 words, the tiny model takes 64 positions
    trace = bert.run(long_text)
    assert trace.input_ids.shape[1] == bert.config.max_positions == 64
    n = len(bert.tokenizer.backend.encode(long_text).ids)
    assert trace.warnings == [f"The text has {n} tokens; truncated to the model's limit of 64 tokens."]


def test_a_cut_below_the_model_limit_names_the_workbench_cap(bert, monkeypatch):
    """Issue 18, bug 9: the core's one sentence says whose limit cut the text (the pages show it as it is)."""
    import models.workbench_model as workbench_model

    monkeypatch.setattr(workbench_model, "DEFAULT_MAX_TOKENS", 16)
    text = "the cat sat on the mat . " * 3
    n = len(bert.tokenizer.backend.encode(text).ids)
    trace = bert.run([text, "a dog"])
    assert trace.input_ids.shape[1] == 16 < n
    assert trace.warnings == [f"Example 0 has {n} tokens; truncated to the workbench's cap of 16 tokens "
                              "(the model allows 64)."]
    asked = bert.run(text, max_length=8)
    assert asked.warnings == [f"The text has {n} tokens; truncated to the requested max_length of 8 tokens "
                              "(the model allows 64)."]


def test_unknown_hub_id_offline_names_the_id_and_what_to_do():
    with pytest.raises(ModelNotFoundError) as error:
        load_model("nobody/definitely-not-a-model")
    assert "nobody/definitely-not-a-model" in str(error.value) and "local" in str(error.value)


def test_missing_folder_and_folder_without_config(tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        load_model(str(tmp_path / "nowhere" / "model"))
    with pytest.raises(ModelNotFoundError, match="config.json"):
        load_model(str(tmp_path))


def test_unsupported_architecture_lists_the_supported_ones(bert_folder, tmp_path):
    folder = _copy(bert_folder, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="wavenet-9000", architectures=["WaveNet9000Model"])  # neither ours nor transformers'
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedArchitectureError) as error:
        load_model(str(folder))
    assert "'wavenet-9000'" in str(error.value) and "bert" in str(error.value) and "t5" in str(error.value)


def test_truncated_safetensors_is_a_weight_file_error(bert_folder, tmp_path):
    folder = _copy(bert_folder, tmp_path)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        load_model(str(folder))


def test_weight_of_the_wrong_shape_names_the_tensor(bert_folder, tmp_path):
    folder = _copy(bert_folder, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    state["encoder.layer.1.attention.self.query.weight"] = torch.zeros(16, 32)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(WeightFileError, match=r"blocks\.1\.attn\.q_proj\.weight: file \(16, 32\), model \(32, 32\)"):
        load_model(str(folder))


def test_missing_weight_is_named(bert_folder, tmp_path):
    folder = _copy(bert_folder, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    del state["encoder.layer.0.output.dense.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(WeightFileError, match="encoder.layer.0.output.dense.weight"):
        load_model(str(folder))


def test_pytorch_bin_loads_with_weights_only(bert_folder, tmp_path, bert):
    folder = _copy(bert_folder, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    again = load_model(str(folder))
    assert torch.equal(again.run("the cat").hidden_states[-1], bert.run("the cat").hidden_states[-1])
    torch.save({"weights": state, "code": object()}, folder / "pytorch_model.bin")  # a pickle that is not a plain state dict
    with pytest.raises(WeightFileError, match="never code"):
        load_model(str(folder))


def test_hooks_read_and_edit_activations_and_are_gone_afterwards(bert):
    seen = {}
    baseline = bert.run("the cat sat").hidden_states[-1]

    def record(x, name):
        seen[name] = x.shape

    def zero_layer_one_heads(z, name):
        return torch.zeros_like(z)

    with bert.hooks({"blocks.0.attn.hook_pattern": record, "blocks.1.attn.hook_z": zero_layer_one_heads}):
        assert active_hook_count() == 2
        edited = bert.run("the cat sat").hidden_states[-1]
    assert seen["blocks.0.attn.hook_pattern"] == (1, 4, 5, 5)
    assert not torch.allclose(edited, baseline)
    assert active_hook_count() == 0
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in bert.network.modules())
    assert torch.equal(bert.run("the cat sat").hidden_states[-1], baseline)


def test_hooks_are_removed_when_the_body_raises(bert):
    with pytest.raises(RuntimeError):
        with bert.hooks({"blocks.0.hook_resid_pre": lambda x, n: None}):
            raise RuntimeError("boom")
    assert active_hook_count() == 0


def test_unknown_hook_point_is_explained(bert):
    with pytest.raises(InputError, match="No hook point matches 'blocks.9.attn.hook_pattern'"):
        with bert.hooks({"blocks.9.attn.hook_pattern": lambda x, n: None}):
            pass


def test_every_hook_point_declares_its_shape(bert):
    assert "blocks.0.attn.hook_pattern" in bert.hook_points and "blocks.1.hook_resid_post" in bert.hook_points
    assert all(point.shape for point in bert.hook_points.values())


def test_a_run_never_mutates_the_model(bert):
    before = {k: v.clone() for k, v in bert.network.state_dict().items()}
    with bert.mask_heads({0: [1]}):
        bert.run(["the cat sat", ("who", "me")])
    bert.run("a dog")
    after = bert.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not bert.network.training
