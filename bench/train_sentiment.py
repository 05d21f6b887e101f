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
from models.labelled_data import read_labelled_texts, split_off
from models.training import TrainingConfig, evaluate, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data" / "sentiment.csv"
LABELS = ["negative", "positive"]

# The shipped recipe (models/embedded/minilm-sentiment/README.md explains the choice)
RECIPE = TrainingConfig(epochs=12, batch_size=16, learning_rate=1e-3, weight_decay=0.01, warmup_ratio=0.1,
                        trainable=("head", "pooler", "last_layer"), seed=0, early_stopping_patience=4)


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
        from models.checkpoint_delta import save_delta
        card = {"held_out_accuracy": held_out.accuracy, "held_out_examples": len(test_split),
                "train_examples": len(fit), "validation_examples": len(validation), "trainable": list(config.trainable),
                "trained_parameters": result.trained_parameters, "epochs_run": len(result.history),
                "best_epoch": result.best_epoch, "learning_rate": config.learning_rate, "batch_size": config.batch_size,
                "seed": config.seed, "training_seconds": round(wall, 1)}
        folder = save_delta(result.model, "minilm", args.export, card)
        print(f"exported to {folder}")


if __name__ == "__main__":
    main()
