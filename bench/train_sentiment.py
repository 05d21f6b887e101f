"""Train MiniLM's sentiment head on sample_data/sentiment.csv; print held-out accuracy and wall time.

    .venv/bin/python -m bench.train_sentiment                      # the shipped recipe
    .venv/bin/python -m bench.train_sentiment --trainable head     # head only, for comparison
    .venv/bin/python -m bench.train_sentiment --export models/embedded/minilm-sentiment

Early stopping watches a validation set split off the train split (15%, stratified); the test
split is only read once, at the end, for the accuracy printed. Times are wall-clock on
torch.set_num_threads(2), from the loaded MiniLM to the trained model (loading is shown apart).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from models import load_model
from models.loading import resolve_folder
from models.labelled_data import read_labelled_texts, split_off
from models.training import TrainingConfig, evaluate, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data" / "sentiment.csv"
LABELS = ["negative", "positive"]

# The shipped recipe (models/embedded/minilm-sentiment/README.md explains the choice)
RECIPE = TrainingConfig(epochs=10, batch_size=16, learning_rate=2e-4, weight_decay=0.01, warmup_ratio=0.1,
                        trainable=("head", "pooler", "last_layer"), seed=0, early_stopping_patience=3)


def _base_folder(name: str) -> Path:
    return resolve_folder(name)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trainable", nargs="+", default=list(RECIPE.trainable))
    parser.add_argument("--epochs", type=int, default=RECIPE.epochs)
    parser.add_argument("--lr", type=float, default=RECIPE.learning_rate)
    parser.add_argument("--batch-size", type=int, default=RECIPE.batch_size)
    parser.add_argument("--patience", type=int, default=RECIPE.early_stopping_patience)
    parser.add_argument("--seed", type=int, default=RECIPE.seed)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--export", type=Path, help="write the trained parameters and a model card to this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    data = read_labelled_texts(DATA, labels=LABELS)
    train_split, test_split = data.split("train"), data.split("test")
    fit, validation = split_off(train_split, 0.15, seed=args.seed)
    config = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                            weight_decay=RECIPE.weight_decay, warmup_ratio=RECIPE.warmup_ratio,
                            trainable=tuple(args.trainable), seed=args.seed, early_stopping_patience=args.patience)

    loading = time.perf_counter()
    body = load_model("minilm").with_head("sequence-classification", labels=LABELS)
    loading = time.perf_counter() - loading
    wall, cpu = time.perf_counter(), time.process_time()
    result = train(body, fit, validation, config,
                   callback=lambda p: print(f"  epoch {p.epoch}: train loss {p.epoch_result.train_loss:.3f}, "
                                            f"validation accuracy {p.epoch_result.eval_accuracy:.3f}", flush=True)
                   if p.epoch_result else None)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    held_out = evaluate(result.model, test_split)

    print(f"data: {len(fit)} train, {len(validation)} validation (early stopping), {len(test_split)} held-out test")
    print(f"trained: {', '.join(config.trainable)} ({result.trained_parameters:,} parameters), "
          f"best epoch {result.best_epoch} of {len(result.history)}, lr {config.learning_rate}, seed {config.seed}")
    print(f"held-out accuracy: {held_out.accuracy:.3f} ({round(held_out.accuracy * len(test_split))}/{len(test_split)})")
    print(f"training time: {wall:.1f} s wall, {cpu:.1f} s CPU on {torch.get_num_threads()} threads "
          f"(loading MiniLM: {loading:.1f} s)")
    if args.export:
        export(result, config, args.export, held_out.accuracy, len(fit), len(validation), test_split, wall, cpu)


def export(result, config: TrainingConfig, folder: Path, accuracy: float, n_fit: int, n_validation: int,
           test_split, wall: float, cpu: float) -> None:
    """Write the trained tensors as a delta on MiniLM, compose it back, and score what ships."""
    import tempfile

    from models.checkpoint_delta import compose, save_delta
    from models.loading import load_folder

    card = {"held_out_accuracy_before_export": round(accuracy, 4), "held_out_examples": len(test_split),
            "train_examples": n_fit, "validation_examples": n_validation, "trainable": list(config.trainable),
            "trained_parameters": result.trained_parameters, "epochs_run": len(result.history),
            "best_epoch": result.best_epoch, "learning_rate": config.learning_rate, "batch_size": config.batch_size,
            "seed": config.seed, "training_seconds_wall": round(wall, 1), "training_seconds_cpu": round(cpu, 1)}
    save_delta(result.model, "minilm", folder, card, resolve=_base_folder)
    with tempfile.TemporaryDirectory() as scratch:
        shipped = evaluate(load_folder(compose(folder, Path(scratch) / "composed", resolve=_base_folder)), test_split)
    card["held_out_accuracy"] = round(shipped.accuracy, 4)
    save_delta(result.model, "minilm", folder, card, resolve=_base_folder)  # again, now with the shipped weights' accuracy in the card
    (folder / "README.md").write_text(model_card(card, result))
    print(f"exported to {folder}: shipped weights score {shipped.accuracy:.3f} on the held-out split")


def model_card(card: dict, result) -> str:
    size = sum(p.stat().st_size for p in Path(__file__).resolve().parent.parent.joinpath(
        "models", "embedded", "minilm-sentiment").glob("*.safetensors"))
    history = "\n".join(f"| {e.epoch} | {e.train_loss:.3f} | {e.eval_loss:.3f} | {e.eval_accuracy:.3f} |"
                        for e in result.history)
    return f"""# minilm-sentiment

MiniLM (all-MiniLM-L6-v2, the embedded `minilm`) with a two-label sentiment classifier
(`BertForSequenceClassification`: negative, positive), trained by this project on
`sample_data/sentiment.csv`. The default labelled model for head importance and attribution.

## What is here, and how it loads

Only the tensors training changed are committed, in float16 (`delta.safetensors`, {size / 1e6:.1f} MB):
the classifier, BERT's pooler and the last encoder layer ({card['trained_parameters']:,} parameters).
`load_model("minilm-sentiment")` composes them with the packaged MiniLM body once, into the
conversion cache, as a complete float32 Hugging Face folder; transformers'
`AutoModelForSequenceClassification` loads that folder and gives the same logits.

## How it was trained

    .venv/bin/python -m bench.train_sentiment --export models/embedded/minilm-sentiment

- data: the train split, {card['train_examples']} sentences, with {card['validation_examples']} more held out
  of it (15%, stratified, seed {card['seed']}) for early stopping; the test split
  ({card['held_out_examples']} sentences) is read once, at the end
- trained: {', '.join(card['trainable'])} (the first five layers and the embeddings frozen; their
  output is computed once and reused)
- AdamW, learning rate {card['learning_rate']} with 10% linear warm-up and linear decay, weight decay 0.01 on
  matrices, batch size {card['batch_size']}, seed {card['seed']}; best of {card['epochs_run']} epochs: epoch {card['best_epoch']}
- training time: {card['training_seconds_wall']} s wall, {card['training_seconds_cpu']} s CPU, torch on 2 threads

| epoch | train loss | validation loss | validation accuracy |
|---|---|---|---|
{history}

## Held-out accuracy

**{card['held_out_accuracy']:.1%}** on the test split, measured on the shipped (float16-stored) weights.

Why not head-only: a classifier on MiniLM's frozen pooled [CLS] vector reaches 65-74% on this
split whatever the learning rate (all-MiniLM-L6-v2 was trained for mean pooling, so its [CLS]
vector carries little sentiment), and training the pooler too reaches 78%. Letting the last
layer re-read the sentence does it: 86-88% over seeds 0 to 4, in about 3 seconds. Full
fine-tuning reaches 85-90% in about 11 seconds, but would mean shipping all 90 MB.
(Measured with this script's `--trainable`, `--lr` and `--seed` options.)

## Limits

Several hundred short hand-written sentences about restaurants, hotels, films, products and
services: the classifier has seen no sarcasm corpus, no long reviews and no other language.
MiniLM's licence (Apache-2.0) applies.
"""


if __name__ == "__main__":
    main()
