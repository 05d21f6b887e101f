"""Every text head of every BERT-shaped encoder family (BERT, RoBERTa, XLM-RoBERTa, CamemBERT, DistilBERT) against
transformers' own classes: parity on one text, a padded batch and sentence pairs; pruned equals masked; saved
folders load back in transformers; heads put on bare bodies round-trip; sentiment classifiers keep their labels and
our text-classification pipeline answers as transformers' does."""
from __future__ import annotations

import json

import pytest
import torch
import transformers as tf

from models import UnsupportedArchitectureError, load_model
from models.families import FAMILIES
from models.pipelines import pipeline
from models.task_heads import available_heads, head_is_trained
from tests.models.config_keys import assert_refused
from tests.models.encoder_parity import (BATCH, check_encoder_head, fill_mask_matches_transformers,
                                         make_encoder_checkpoint, reference_inputs)

SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37)
ROBERTA = dict(SIZE, max_position_embeddings=66, pad_token_id=1, type_vocab_size=1)
# family -> (config class, class-name prefix, tokenizer style, config, tokenizer returns token_type_ids)
ENCODERS = {
    "bert": (tf.BertConfig, "Bert", "bert", dict(SIZE, max_position_embeddings=64, pad_token_id=0), True),
    "roberta": (tf.RobertaConfig, "Roberta", "roberta", ROBERTA, False),
    "xlm-roberta": (tf.XLMRobertaConfig, "XLMRoberta", "roberta", ROBERTA, False),
    "camembert": (tf.CamembertConfig, "Camembert", "roberta", ROBERTA, False),
    "distilbert": (tf.DistilBertConfig, "DistilBert", "bert",
                   dict(dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=64, pad_token_id=0),
                   False),
}
HEADS = {"masked-lm": "ForMaskedLM", "sequence-classification": "ForSequenceClassification",
         "token-classification": "ForTokenClassification", "question-answering": "ForQuestionAnswering"}
LABELLED = ("sequence-classification", "token-classification")
CASES = [(family, task) for family in ENCODERS for task in HEADS]
SENTENCES = ["i love this film", "i hate that movie .", "not good at all", "very bad , very bad", "the cat sat"]


def _checkpoint(family: str, class_name: str, folder, **extra):
    config_class, prefix, style, config, token_types = ENCODERS[family]
    return make_encoder_checkpoint(config_class, getattr(tf, f"{prefix}{class_name}"), folder, style,
                                   token_types=token_types, **config, **extra)


def test_every_encoder_family_has_the_four_text_heads():
    for family in ENCODERS:
        assert available_heads(family) == list(HEADS), family
        prefix = ENCODERS[family][1]
        assert {task: fmt.architecture for task, fmt in FAMILIES[family].heads.items()} == \
            {task: f"{prefix}{suffix}" for task, suffix in HEADS.items()}


@pytest.mark.parametrize("family, key, value", [
    ("roberta", "position_embedding_type", "relative_key"), ("xlm-roberta", "hidden_act", "mish"),
    ("camembert", "is_decoder", True), ("roberta", "add_cross_attention", True), ("distilbert", "activation", "mish"),
])
def test_a_refused_value_names_its_key(family, key, value):
    hf = tf.AutoConfig.for_model(family).to_dict()
    hf[key] = value
    assert_refused(FAMILIES[family].config_from_hf, hf, key)


@pytest.mark.parametrize("family", [f for f in ENCODERS if f != "bert"])
def test_multiple_choice_checkpoints_are_refused_by_name(family, tmp_path):
    """No multiple-choice head is implemented: such a checkpoint is refused, not opened without its head."""
    _checkpoint(family, "ForMultipleChoice", tmp_path)
    with pytest.raises(UnsupportedArchitectureError, match="No 'multiple-choice' head"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("family, task", CASES)
def test_head_matches_transformers(family, task, tmp_path):
    extra = dict(num_labels=3) if task in LABELLED else {}
    reference = _checkpoint(family, HEADS[task], tmp_path / "ckpt", **extra)
    check_encoder_head(reference, tmp_path / "ckpt", tmp_path, task)


@pytest.mark.parametrize("family, task", [(f, t) for f in ENCODERS if f != "bert" for t in HEADS])
def test_head_put_on_a_bare_body_loads_in_transformers(family, task, tmp_path):
    """The Task heads page's path: a bare XModel body, a fresh head (with_head), saved, read by AutoModelFor..."""
    _checkpoint(family, "Model", tmp_path / "body")
    body = load_model(str(tmp_path / "body"))
    labels = ["negative", "positive", "neutral"] if task in LABELLED else None
    swapped = body.with_head(task, labels=labels, seed=1)
    assert swapped.task == task and head_is_trained(swapped) is False and body.task is None
    before, after = body.run(BATCH), swapped.run(BATCH)
    for a, b in zip(before.hidden_states, after.hidden_states):
        assert torch.equal(a, b)
    with torch.no_grad():  # fresh heads have zero biases: make every head weight count
        for p in swapped.network.head.parameters():
            if p is not swapped.network.embed.word.weight:
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.1)
    swapped.save_pretrained(tmp_path / "saved")
    auto = {"masked-lm": tf.AutoModelForMaskedLM, "sequence-classification": tf.AutoModelForSequenceClassification,
            "token-classification": tf.AutoModelForTokenClassification,
            "question-answering": tf.AutoModelForQuestionAnswering}[task]
    reference, info = auto.from_pretrained(tmp_path / "saved", attn_implementation="eager", output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    assert type(reference).__name__ == f"{ENCODERS[family][1]}{HEADS[task]}"
    if labels:
        assert reference.config.id2label == dict(enumerate(labels))
    trace = swapped.run(BATCH)
    with torch.no_grad():
        out = reference.eval()(**reference_inputs(reference, trace))
    theirs = torch.stack([out.start_logits, out.end_logits], -1) if task == "question-answering" else out.logits
    ours = trace.logits
    if ours.dim() == 3:
        real = trace.attention_mask.bool()
        ours, theirs = ours[real], theirs[real]
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


@pytest.mark.parametrize("family", ["roberta", "distilbert"])
def test_fill_mask_pipeline_equals_transformers(family, tmp_path):
    _checkpoint(family, "ForMaskedLM", tmp_path)
    mask = "<mask>" if ENCODERS[family][2] == "roberta" else "[MASK]"
    fill_mask_matches_transformers(tmp_path, f"the cat {mask} on the mat .")


# ---------------------------------------------------------------- sentiment classifiers and the pipeline

SST2 = {0: "NEGATIVE", 1: "POSITIVE"}


@pytest.fixture(scope="module", params=["distilbert", "roberta"])
def sentiment(request, tmp_path_factory):
    """A distilbert-base-uncased-finetuned-sst-2-english-style folder (and its RoBERTa twin), saved by transformers
    with NEGATIVE/POSITIVE labels and the extra config fields such checkpoints carry."""
    folder = tmp_path_factory.mktemp(f"{request.param}-sst2")
    model = _checkpoint(request.param, "ForSequenceClassification", folder, id2label=SST2,
                        label2id={v: k for k, v in SST2.items()}, finetuning_task="sst-2")
    # centre the output bias on the sentences' median logit gap, so both labels occur among the answers
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = torch.cat([model(**tokenizer(text, return_tensors="pt")).logits for text in SENTENCES])
        out = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == 2][-1]
        out.bias[1] -= (logits[:, 1] - logits[:, 0]).median() + 1e-3
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(output_past=True, tie_weights_=True)  # fields of the hub checkpoint no modeling code reads
    (folder / "config.json").write_text(json.dumps(config))
    return request.param, folder


def test_sentiment_classifier_loads_with_its_labels(sentiment):
    family, folder = sentiment
    model = load_model(str(folder))
    assert model.family == family and model.task == "sequence-classification"
    assert model.labels == SST2 and model.tasks == ("text-classification",)
    assert head_is_trained(model) is True


@pytest.mark.parametrize("top_k", [1, 2, None])
def test_text_classification_pipeline_equals_transformers(sentiment, top_k):
    _, folder = sentiment
    ours = pipeline("text-classification", model=str(folder))
    theirs = tf.pipeline("text-classification", model=str(folder), tokenizer=str(folder))
    kwargs = {} if top_k == 1 else {"top_k": top_k}
    assert {ours(text)[0]["label"] for text in SENTENCES} == set(SST2.values())
    for text in SENTENCES:
        a, b = ours(text, **kwargs), theirs(text, **kwargs)
        assert [r["label"] for r in a] == [r["label"] for r in b], text
        torch.testing.assert_close(torch.tensor([r["score"] for r in a]), torch.tensor([r["score"] for r in b]),
                                   atol=1e-4, rtol=0)
    batch_ours, batch_theirs = ours(SENTENCES, **kwargs), theirs(SENTENCES, **kwargs)
    flatten = (lambda rows: [r for row in rows for r in (row if isinstance(row, list) else [row])])
    assert [r["label"] for r in flatten(batch_ours)] == [r["label"] for r in flatten(batch_theirs)]
    torch.testing.assert_close(torch.tensor([r["score"] for r in flatten(batch_ours)]),
                               torch.tensor([r["score"] for r in flatten(batch_theirs)]), atol=1e-4, rtol=0)
