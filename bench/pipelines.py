"""Latency of our pipelines against transformers' pipelines on the same model and input (goal: ratio <= 1.0).

For each task both pipelines load the same Hugging Face folder and run the same input. Ours
returns its trace (every hidden state; attention patterns computed when first read, see
models/deferred_patterns.py) with each result; transformers' computes none. A third column times
ours followed by reading every attention pattern of the trace, which is what the Compare page
and the Images & audio page pay. Each sample repeats a call until it fills --sample-seconds,
interleaved with the other side, and the median sample is reported. Speech recognition is greedy on both sides (transformers' pipeline defaults to
5-beam search; it is given num_beams=1 so both do the same work).

Models: the embedded checkpoints where the task has one (minilm-sentiment, smollm2, vit-digits,
whisper-tiny.en); random-weight models of a realistic size (BERT 6 x 384, Wav2Vec2 base layout
6 x 384) for fill-mask, token-classification, question-answering and audio-classification, which
no embedded checkpoint serves.

Run: .venv/bin/python bench/pipelines.py [--repeats N] [--sample-seconds S] [--tasks task ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

from bench._timing import interleaved_medians  # noqa: E402
from models import load_model, pipeline  # noqa: E402
from models.embedded import EMBEDDED  # noqa: E402
from tests.tiny_modal_models import noise_clip  # noqa: E402
from tests.tiny_models import save_tokenizer, word_tokenizer  # noqa: E402

TEXT = "the cat sat on the mat and then a dog barked loudly ."


def _bert(folder: Path, cls_name: str, **extra) -> Path:
    import transformers as tf
    torch.manual_seed(0)
    tok = word_tokenizer(["[PAD]", "[CLS]", "[SEP]", "[MASK]"], "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1")
    tok.add_special_tokens(["[MASK]"])
    config = tf.BertConfig(vocab_size=64, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                           intermediate_size=1536, max_position_embeddings=512, **extra)
    getattr(tf, cls_name)(config).save_pretrained(folder)
    save_tokenizer(tok, folder, {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                                 "mask_token": "[MASK]", "unk_token": "[UNK]"})
    return folder


def _wav2vec2_cls(folder: Path) -> Path:
    import transformers as tf
    torch.manual_seed(0)
    config = tf.Wav2Vec2Config(hidden_size=384, num_hidden_layers=6, num_attention_heads=6, intermediate_size=1536,
                               num_labels=4, classifier_proj_size=128)
    tf.Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    tf.Wav2Vec2FeatureExtractor().save_pretrained(folder)
    return folder


def _embedded_or(name: str, fallback):
    """The embedded checkpoint, or (when it is not built on this machine) a random one of a similar size."""
    try:
        return EMBEDDED[name]()
    except Exception as error:  # noqa: BLE001 - reported, then the fallback is measured instead
        print(f"({name} unavailable: {error}; using random weights of a similar size)")
        return fallback()


def cases(scratch: Path) -> dict[str, tuple[str, object, dict]]:
    """task -> (folder, input, transformers call kwargs)."""
    speech = ROOT / "sample_data" / "speech" / "clip_01.wav"
    image = ROOT / "sample_data" / "images" / "digit_7.png"
    return {
        "fill-mask": (_bert(scratch / "mlm", "BertForMaskedLM"), "the cat [MASK] on the mat .", {}),
        "text-classification": (_embedded_or("minilm-sentiment", lambda: _bert(scratch / "cls", "BertForSequenceClassification")),
                                "I love this film, it was wonderful.", {}),
        "token-classification": (_bert(scratch / "ner", "BertForTokenClassification", num_labels=5), TEXT, {}),
        "question-answering": (_bert(scratch / "qa", "BertForQuestionAnswering"),
                               {"question": "who barked ?", "context": TEXT}, {}),
        "text-generation": (EMBEDDED["smollm2"](), "The capital of France is",
                            {"max_new_tokens": 20, "do_sample": False}),
        "image-classification": (EMBEDDED["vit-digits"](), str(image), {}),
        "automatic-speech-recognition": (EMBEDDED["whisper-tiny.en"](), str(speech),
                                         {"generate_kwargs": {"num_beams": 1}}),
        "audio-classification": (_wav2vec2_cls(scratch / "w2v2"), {"raw": noise_clip(3.0), "sampling_rate": 16000}, {}),
    }


def _read_patterns(result) -> None:
    """Compute every attention pattern the result's trace holds (self, encoder and cross)."""
    trace = result.trace
    for patterns in (trace.attentions, trace.encoder_attentions, trace.cross_attentions):
        for layer in patterns:
            assert layer.dim() == 4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sample-seconds", type=float, default=0.3)
    parser.add_argument("--tasks", nargs="*")
    args = parser.parse_args()
    import transformers as tf
    with tempfile.TemporaryDirectory() as tmp:
        table = cases(Path(tmp))
        print(f"{'task':30s} {'ours ms':>9s} {'transformers ms':>16s} {'ratio':>7s} "
              f"{'ours+patterns ms':>17s} {'ratio':>7s}")
        for task, (folder, inputs, their_kwargs) in table.items():
            if args.tasks and task not in args.tasks:
                continue
            ours = pipeline(task, load_model(str(folder)))
            theirs = tf.pipeline(task, model=str(folder), device="cpu")
            our_kwargs = {k: v for k, v in their_kwargs.items() if k == "max_new_tokens"}
            if isinstance(inputs, dict) and task == "question-answering":
                run_ours, run_theirs = (lambda: ours(**inputs)), (lambda: theirs(**inputs))
            else:
                run_ours = lambda: ours(inputs, **our_kwargs)  # noqa: E731
                run_theirs = lambda: theirs(inputs, **their_kwargs)  # noqa: E731
            run_read = lambda: _read_patterns(run_ours())  # noqa: E731
            medians = interleaved_medians({"ours": run_ours, "theirs": run_theirs, "read": run_read},
                                          repeats=args.repeats, warmup=1, min_sample_seconds=args.sample_seconds)
            ours_ms, theirs_ms, read_ms = (1000 * medians[k] for k in ("ours", "theirs", "read"))
            print(f"{task:30s} {ours_ms:9.1f} {theirs_ms:16.1f} {ours_ms / theirs_ms:7.2f} "
                  f"{read_ms:17.1f} {read_ms / theirs_ms:7.2f}", flush=True)


if __name__ == "__main__":
    main()
