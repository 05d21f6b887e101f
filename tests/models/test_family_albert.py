"""ALBERT against transformers (eager) on tiny scrambled checkpoints: a factorised embedding (24 wide under a
32-wide stack), one shared layer applied three times, two groups over three applications, and two inner layers.

Checked: hidden states, attentions and logits of every head on one text, a padded batch and sentence pairs;
masking one application's head against transformers' own layers run one application at a time; pruning the
same heads from every application of a shared layer equals masking them, shares the weights still, and saves a
checkpoint transformers loads (its `pruned_heads` keyed by shared layer) with equal logits; a checkpoint
transformers pruned loads here; other pruning and the sentence-order head are refused by name.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers as tf

from models import load_model
from models.errors import HeadIndexError, UnsupportedArchitectureError
from models.families import FAMILIES
from tests.models.config_keys import assert_refused
from tests.tiny_models import save_tokenizer, word_tokenizer

ATOL = 1e-4
TEXT = "the cat sat on the mat ."
BATCH = ["a dog barked loudly and then ran away quickly .", "the cat sat ."]
PAIRS = [("who was it ?", "it was me ."), ("the cat sat ?", "a dog .")]
CONFIGS = {
    "one_group": dict(num_hidden_layers=3, num_hidden_groups=1),
    "two_groups": dict(num_hidden_layers=3, num_hidden_groups=2),  # applications 0, 1 run group 0; 2 runs group 1
}
CLASSES = {None: tf.AlbertModel, "masked-lm": tf.AlbertForMaskedLM,
           "sequence-classification": tf.AlbertForSequenceClassification,
           "token-classification": tf.AlbertForTokenClassification,
           "question-answering": tf.AlbertForQuestionAnswering}


def make_albert(folder: Path, task: str | None = "masked-lm", seed: int = 0, **config) -> tf.PreTrainedModel:
    """A tiny scrambled ALBERT saved to `folder` with a word-level BERT-style tokenizer; returns it (eager, eval)."""
    torch.manual_seed(seed)
    params = dict(vocab_size=64, embedding_size=24, hidden_size=32, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64, num_labels=2 if task == "question-answering" else 3,
                  hidden_act="gelu_new")
    params.update(config)
    cfg = tf.AlbertConfig(**params)
    cfg._attn_implementation = "eager"
    model = CLASSES[task](cfg).eval()
    with torch.no_grad():  # scrambled: every weight, norm and bias random, so parity sees each parameter
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.5) + (1.0 if "norm" in name.lower() else 0.0))
    model.save_pretrained(folder)
    special = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    save_tokenizer(word_tokenizer(special, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"), folder,
                   {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]",
                    "unk_token": "[UNK]"})
    return model


def reference(model, trace, **kwargs):
    with torch.no_grad():
        return model(input_ids=trace.input_ids, attention_mask=trace.attention_mask,
                     token_type_ids=trace.token_type_ids, output_attentions=True, output_hidden_states=True, **kwargs)


def their_logits(out) -> torch.Tensor | None:
    if hasattr(out, "start_logits"):
        return torch.stack([out.start_logits, out.end_logits], dim=-1)  # ours: (B, T, 2)
    return getattr(out, "logits", None)


def assert_same(trace, theirs, atol: float = ATOL, every: int = 1) -> None:
    """Our trace equals transformers' outputs; `every`: transformers keeps one hidden state per that many layers."""
    real = trace.attention_mask.bool()
    ours_states = trace.hidden_states[::every]
    assert len(ours_states) == len(theirs.hidden_states)
    for a, b in zip(ours_states, theirs.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=atol, rtol=0)
    assert len(trace.attentions) == len(theirs.attentions)
    for a, b in zip(trace.attentions, theirs.attentions):
        keys = real[:, None, None, :].expand_as(a)
        torch.testing.assert_close(a * keys, b * keys, atol=atol, rtol=0)
    logits = their_logits(theirs)
    if logits is None:
        return
    if logits.dim() == 3:
        torch.testing.assert_close(trace.logits[real], logits[real], atol=atol, rtol=0)
    else:
        torch.testing.assert_close(trace.logits, logits, atol=atol, rtol=0)


@pytest.fixture(scope="module", params=[(c, t) for c in CONFIGS for t in CLASSES])
def pair(request, tmp_path_factory):
    config, task = request.param
    folder = tmp_path_factory.mktemp(f"albert_{config}_{task}")
    theirs = make_albert(folder, task, **CONFIGS[config])
    return task, theirs, load_model(str(folder))


def test_every_head_matches_transformers_on_a_text_a_padded_batch_and_pairs(pair):
    task, theirs, model = pair
    assert model.task == task and model.family == "albert" and model.n_layers == 3
    assert model.num_parameters() == sum(p.numel() for p in theirs.parameters())  # shared weights counted once
    batch = model.run(BATCH)
    assert batch.attention_mask[1].sum() < batch.attention_mask[0].sum()
    pairs = model.run(PAIRS)
    assert pairs.token_type_ids[0].max() == 1  # the second segment is marked
    for trace in (model.run(TEXT), batch, pairs):
        assert_same(trace, reference(theirs, trace))


def test_saved_folder_loads_here_and_in_transformers_with_equal_outputs(pair, tmp_path):
    task, theirs, model = pair
    model.save_pretrained(tmp_path)
    again = load_model(str(tmp_path))
    a, b = model.run(BATCH), again.run(BATCH)
    for x, y in zip(a.hidden_states, b.hidden_states):
        assert torch.equal(x, y)
    reloaded, info = type(theirs).from_pretrained(tmp_path, attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert_same(a, reference(reloaded.eval(), a))


def per_application_reference(theirs: tf.AlbertModel, trace, masked: dict[int, list[int]]) -> list[torch.Tensor]:
    """Hidden states from transformers' own embeddings and layers, run one application at a time, with a head
    mask on the named applications only (transformers' head_mask is per shared layer, so it cannot say this)."""
    cfg = theirs.config
    with torch.no_grad():
        h = theirs.encoder.embedding_hidden_mapping_in(
            theirs.embeddings(trace.input_ids, token_type_ids=trace.token_type_ids))
        mask = (1.0 - trace.attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        states = [h]
        for i in range(cfg.num_hidden_layers):
            layer = theirs.encoder.albert_layer_groups[int(i / (cfg.num_hidden_layers / cfg.num_hidden_groups))]
            head_mask = None
            if i in masked:
                head_mask = torch.ones(cfg.num_attention_heads)
                head_mask[masked[i]] = 0.0
                head_mask = head_mask[None, :, None, None]
            h = layer.albert_layers[0](h, mask, head_mask)[0]
            states.append(h)
    return states


@pytest.mark.parametrize("config", list(CONFIGS))
def test_masking_a_head_of_one_application_masks_that_application_only(config, tmp_path):
    theirs = make_albert(tmp_path, None, **CONFIGS[config])
    model = load_model(str(tmp_path))
    plain = model.run(BATCH)
    with model.mask_heads({1: [0, 2]}):
        masked = model.run(BATCH)
    real = plain.attention_mask.bool()
    for a, b in zip(masked.hidden_states[:2], plain.hidden_states[:2]):  # before application 1: untouched
        assert torch.equal(a, b)
    assert not torch.allclose(masked.hidden_states[2][real], plain.hidden_states[2][real])
    for ours, expected in zip(masked.hidden_states, per_application_reference(theirs, plain, {1: [0, 2]})):
        torch.testing.assert_close(ours[real], expected[real], atol=ATOL, rtol=0)


def test_pruning_every_application_of_a_shared_layer_equals_masking_and_loads_in_transformers(tmp_path):
    theirs = make_albert(tmp_path / "source", "masked-lm", **CONFIGS["two_groups"])
    model = load_model(str(tmp_path / "source"))
    spec = {0: [1, 3], 1: [1, 3], 2: [0]}  # group 0 (applications 0 and 1) loses heads 1 and 3, group 1 head 0
    with model.mask_heads(spec):
        masked = model.run(BATCH)
    pruned = model.prune_heads(spec)
    assert pruned.head_ids() == [[0, 2], [0, 2], [1, 2, 3]]
    blocks = pruned.network.blocks
    assert blocks[0].attn.q_proj is blocks[1].attn.q_proj and blocks[0].ln2 is blocks[1].ln2  # still shared
    assert blocks[0].attn is not blocks[1].attn  # and still two layers with their own hook points
    again = pruned.run(BATCH)
    real = masked.attention_mask.bool()
    for a, b in zip(again.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a[real], b[real], atol=1e-5, rtol=0)
    torch.testing.assert_close(again.logits[real], masked.logits[real], atol=1e-5, rtol=0)
    assert model.head_ids() == [[0, 1, 2, 3]] * 3  # the source model is untouched

    pruned.save_pretrained(tmp_path / "pruned")
    reloaded = tf.AlbertForMaskedLM.from_pretrained(tmp_path / "pruned", attn_implementation="eager").eval()
    assert {int(k): sorted(v) for k, v in reloaded.config.pruned_heads.items()} == {0: [1, 3], 1: [0]}
    assert_same(again, reference(reloaded, again))
    ours_again = load_model(str(tmp_path / "pruned")).run(BATCH)
    for a, b in zip(ours_again.hidden_states, again.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_pruning_some_applications_of_a_shared_layer_is_refused(tmp_path):
    make_albert(tmp_path, None, **CONFIGS["one_group"])
    model = load_model(str(tmp_path))
    with pytest.raises(HeadIndexError, match=r"shares one layer's weights between layers \[0, 1, 2\]"):
        model.prune_heads({1: [0]})
    assert model.head_ids() == [[0, 1, 2, 3]] * 3


def test_a_checkpoint_transformers_pruned_loads_with_equal_outputs(tmp_path):
    theirs = make_albert(tmp_path / "source", "sequence-classification", **CONFIGS["two_groups"])
    theirs.prune_heads({0: [2], 1: [0, 1]})  # shared layers: group 0 and group 1
    theirs.save_pretrained(tmp_path / "pruned")
    for name in ("tokenizer.json", "special_tokens_map.json", "tokenizer_config.json"):
        (tmp_path / "pruned" / name).write_bytes((tmp_path / "source" / name).read_bytes())
    model = load_model(str(tmp_path / "pruned"))
    assert model.head_ids() == [[0, 1, 3], [0, 1, 3], [2, 3]]
    trace = model.run(BATCH)
    assert_same(trace, reference(theirs, trace))


def test_two_inner_layers_per_group_are_two_layers_of_the_trace(tmp_path):
    theirs = make_albert(tmp_path, "masked-lm", num_hidden_layers=2, num_hidden_groups=1, inner_group_num=2)
    model = load_model(str(tmp_path))
    assert model.n_layers == 4  # 2 applications x 2 inner layers; transformers keeps 3 hidden states, 4 patterns
    trace = model.run(BATCH)
    assert_same(trace, reference(theirs, trace), every=2)
    assert model.network.blocks[0].attn.q_proj is model.network.blocks[2].attn.q_proj
    assert model.network.blocks[0].attn.q_proj is not model.network.blocks[1].attn.q_proj


def test_refusals_name_what_they_refuse():
    hf = tf.AlbertConfig().to_dict()
    config_from_hf = FAMILIES["albert"].config_from_hf
    for key, value in (("position_embedding_type", "relative_key"), ("hidden_act", "mish"),
                       ("num_hidden_groups", 13)):
        assert_refused(config_from_hf, {**hf, key: value}, key)
    with pytest.raises(UnsupportedArchitectureError, match="AlbertForPreTraining.*sentence-order"):
        config_from_hf({**hf, "architectures": ["AlbertForPreTraining"]})
    with pytest.raises(UnsupportedArchitectureError, match=r"shared layers \[5\]"):
        config_from_hf({**hf, "pruned_heads": {"5": [0]}})


def test_each_application_has_its_own_hook_points_and_the_fast_path_agrees(tmp_path):
    make_albert(tmp_path, "masked-lm", **CONFIGS["one_group"])
    model = load_model(str(tmp_path))
    seen = []
    with model.hooks({"blocks.1.attn.hook_pattern": lambda x, name: seen.append(name)}):
        captured = model.run(BATCH)
    assert seen == ["blocks.1.attn.hook_pattern"]  # one application, though its weights run three times
    real = captured.attention_mask.bool()
    for capture in (False, "deferred"):
        with model.mask_heads({2: [1]}):
            fast, slow = model.run(BATCH, capture=capture), model.run(BATCH)
        torch.testing.assert_close(fast.logits[real], slow.logits[real], atol=1e-5, rtol=0)
        if capture:
            for a, b in zip(fast.attentions, slow.attentions):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
