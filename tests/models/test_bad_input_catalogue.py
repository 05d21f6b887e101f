"""Issue 17's bad-input catalogue: each case gets a typed WorkbenchError whose message says what to do."""
from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from models import InputError, WeightFileError, load_model
from models.errors import HeadIndexError
from models.hooks import active_hook_count
from models.preprocessing.audio import load_audio
from tests.tiny_models import make_checkpoint


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("catalogue")
    for kind in ("bert", "gpt2"):
        make_checkpoint(kind, root / kind)
    return root


@pytest.fixture(scope="module")
def bert(folders):
    return load_model(str(folders / "bert"))


@pytest.fixture(scope="module")
def gpt2(folders):
    return load_model(str(folders / "gpt2"))


def _copy(folders, kind, tmp_path):
    target = tmp_path / kind
    shutil.copytree(folders / kind, target)
    return target


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _edit_weights(folder, edit):
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))


# ---------------------------------------------------------------- text
@pytest.mark.parametrize("text, says", [
    ("the \ud800 cat", r"U\+D800.*lone surrogate.*errors='replace'"),
    ([("the cat",)], "tuple of 1 items.*exactly two strings"),
    (("the cat",), "tuple of 1 items.*exactly two strings"),
    ([("a", "b", "c")], "tuple of 3 items.*exactly two strings"),
    (b"the cat", r"bytes.*decode it first"),
    ([b"the cat"], r"bytes.*decode it first"),
    ([("the cat", b"a dog")], r"bytes.*decode it first"),
    (5, "got int"),
    ([5], "got int"),
    ({"text": "the cat"}, "got dict"),
    ([["the", "cat"]], "got list"),
])
def test_bad_text_is_an_input_error_that_says_what_to_pass(bert, text, says):
    with pytest.raises(InputError, match=says) as error:
        bert.run(text)
    if isinstance(text, bytes) or (isinstance(text, list) and isinstance(text[0], bytes)):
        assert "got int" not in str(error.value)


def test_bytes_never_read_as_a_list_of_ints(gpt2):
    with pytest.raises(InputError, match="bytes") as error:
        gpt2.run(b"the cat")
    assert "int" not in str(error.value)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_input_ids_longer_than_the_position_table(request, kind):
    model = request.getfixturevalue(kind)
    with pytest.raises(InputError, match="100 tokens; the model has 64 positions.*at most 64"):
        model.run(input_ids=torch.zeros(1, 100, dtype=torch.long))


def test_max_length_past_the_positions_cuts_at_the_table_with_a_warning(bert):
    trace = bert.run(" ".join(["the cat"] * 60), max_length=200)
    assert trace.input_ids.shape[1] == 64
    assert trace.warnings and "64" in trace.warnings[0]


@pytest.mark.parametrize("max_length, says", [(-1, "max_length=-1 leaves no tokens"),
                                              (0, "max_length=0 leaves no tokens"),
                                              (2.5, "whole number"), (True, "whole number"), ("8", "whole number")])
def test_bad_max_length_is_refused(bert, max_length, says):
    with pytest.raises(InputError, match=says):
        bert.run("the cat", max_length=max_length)


def test_max_length_zero_does_not_mean_no_limit(bert):
    with pytest.raises(InputError, match="at least 1"):
        bert.encode(" ".join(["the cat"] * 60), max_length=0)


def test_unknown_capture_mode_is_refused(bert):
    with pytest.raises(InputError, match="capture='bogus' is not a capture mode"):
        bert.run("the cat", capture="bogus")


@pytest.mark.parametrize("ids, mask, says", [
    (torch.zeros(1, 2, 3, dtype=torch.long), None, r"\(tokens,\) or \(batch, tokens\)"),
    ([0.5, 1.2], None, "whole numbers"),
    ("abc", None, "list or tensor of token ids"),
    ([[1, 2, 3]], [[1, 1]], "must match input_ids"),
    ([[1, 2, 3]], torch.full((1, 3), float("nan")), "whole numbers"),
    ([[1, 2, 3]], torch.full((1, 3), 5.0), "only 0 .* and 1"),
    ([[1, 2, 3]], [[0, 0, 0]], "at least one real token"),
])
def test_bad_token_ids_and_attention_masks(bert, ids, mask, says):
    with pytest.raises(InputError, match=says):
        bert.run(input_ids=ids, attention_mask=mask)


@pytest.mark.parametrize("value", [float("nan"), 5.0, -1.0])
def test_head_mask_tensor_is_refused_like_the_dict_form(bert, value):
    tensor = torch.ones(bert.n_layers, bert.n_heads)
    tensor[0, 1] = value
    with pytest.raises(HeadIndexError, match="between 0 .* and 1"):
        with bert.mask_heads(tensor):
            pass
    with pytest.raises(HeadIndexError, match="between 0 and 1"):
        with bert.mask_heads({0: {1: value}}):
            pass
    assert active_hook_count() == 0


# ---------------------------------------------------------------- folders
def test_config_that_is_a_json_list_or_a_folder(folders, tmp_path):
    folder = _copy(folders, "bert", tmp_path)
    (folder / "config.json").write_text("[1, 2]")
    with pytest.raises(WeightFileError, match="JSON list, not the object"):
        load_model(str(folder))
    (folder / "config.json").unlink()
    (folder / "config.json").mkdir()
    with pytest.raises(WeightFileError, match="not a regular file"):
        load_model(str(folder))


@pytest.mark.parametrize("name, content, says", [
    ("tokenizer.json", "{not json", "tokenizer files .* cannot be read.*download or copy them again"),
    ("tokenizer.json", '{"model": 5}', "tokenizer files .* cannot be read"),
    ("tokenizer_config.json", "[1", "not readable JSON.*fix or replace"),
    ("special_tokens_map.json", "[1]", "JSON list, not an object"),
])
def test_corrupt_tokenizer_files(folders, tmp_path, name, content, says):
    folder = _copy(folders, "bert", tmp_path)
    (folder / name).write_text(content)
    with pytest.raises(WeightFileError, match=says):
        load_model(str(folder))


@pytest.mark.parametrize("kind, key", [("bert", "vocab_size"), ("gpt2", "vocab_size"),
                                       ("bert", "max_position_embeddings"), ("gpt2", "n_positions")])
def test_a_billion_rows_is_refused_before_allocation(folders, tmp_path, kind, key):
    folder = _copy(folders, kind, tmp_path)
    _edit_config(folder, **{key: 10**9})
    start = time.perf_counter()
    with pytest.raises(WeightFileError, match="would need about .* GB"):
        load_model(str(folder))
    assert time.perf_counter() - start < 5  # refused from the config, not after filling memory


@pytest.mark.parametrize("kind, changes, says", [
    ("bert", {"num_attention_heads": 0}, "config.json"),
    ("gpt2", {"n_head": 0}, "config.json"),
    ("bert", {"num_hidden_layers": -1}, "asks for -1 layers.*at least 1"),
    ("gpt2", {"n_layer": -1}, "asks for -1 layers.*at least 1"),
    ("bert", {"max_position_embeddings": -5}, "asks for -5 positions"),
    ("bert", {"layer_norm_eps": "x"}, "norm epsilon of 'x'"),
    ("bert", {"vocab_size": True}, "vocabulary of True"),
])
def test_impossible_config_values(folders, tmp_path, kind, changes, says):
    folder = _copy(folders, kind, tmp_path)
    _edit_config(folder, **changes)
    with pytest.raises(WeightFileError, match=says) as error:
        load_model(str(folder))
    assert "fix or replace" in str(error.value).lower()


def _as(dtype):
    def edit(state):
        key = "embeddings.word_embeddings.weight"
        state[key] = state[key].to(dtype) if dtype != torch.bool else state[key] > 0
    return edit


def _all_nan(state):
    for key, value in state.items():
        if value.is_floating_point():
            state[key] = torch.full_like(value, float("nan"))


@pytest.mark.parametrize("edit, says", [(_as(torch.int64), r"floating point.*int64"),
                                        (_as(torch.bool), r"floating point.*bool"),
                                        (_all_nan, "NaN in embed.word.weight")])
def test_weights_that_are_not_floats_or_are_nan_are_refused(folders, tmp_path, edit, says):
    folder = _copy(folders, "bert", tmp_path)
    _edit_weights(folder, edit)
    with pytest.raises(WeightFileError, match=says) as error:
        load_model(str(folder))
    assert "again" in str(error.value) or "use another" in str(error.value)


# ---------------------------------------------------------------- audio
@pytest.mark.parametrize("rate", [0, -1, -16000, 8000.5, float("nan"), "16000", True])
def test_bad_sampling_rate_is_refused(rate):
    wave = np.zeros(1600, dtype=np.float32)
    with pytest.raises(InputError, match="sampling.rate"):
        load_audio(wave, 16000, rate)
    with pytest.raises(InputError, match="sampling.rate"):
        load_audio({"array": wave, "sampling_rate": rate}, 16000)


def test_sampling_rate_none_is_the_models_own_and_whole_floats_are_fine():
    wave = np.zeros(1600, dtype=np.float32)
    assert len(load_audio(wave, 16000, None)) == 1600
    assert len(load_audio(wave, 16000, 8000.0)) == 3200

