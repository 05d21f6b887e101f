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
no embedded checkpoint serves; for translation and summarization a random Marian-shaped and a
BART-shaped encoder-decoder (6 + 6 layers, d 512, vocabulary 8,192), greedy on both sides, 20 new
tokens (transformers' pipelines are given num_beams=1 and max_new_tokens=20).

Run: .venv/bin/python bench/pipelines.py [--repeats N] [--sample-seconds S] [--tasks task ...]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Callable

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
SUMMARY_TEXT = ("the cat sat on the mat all morning while the dog slept by the door . then the dog woke up , saw "
                "the cat and barked loudly , and the cat ran away quickly into the garden .")
# both sides greedy, the same number of new tokens (random weights rarely reach the end token)
SEQ2SEQ_CALL = {"max_new_tokens": 20, "do_sample": False, "num_beams": 1}


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


def _seq2seq(folder: Path, kind: str) -> Path:
    """A random Marian-shaped (opus-mt layout: 6 + 6 layers, d 512, 8 heads, swish, scaled embeddings, sinusoidal
    positions) or BART-shaped (the same sizes, gelu, learned positions, layernorm_embedding) translator, with a
    word-level tokenizer of 8,192 entries (specials, the test words, then made-up words) that ends each text as
    the family's tokenizer does."""
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    torch.manual_seed(0)
    special = ["<s>", "<pad>", "</s>", "<unk>"]
    words = special + [w for w in dict.fromkeys(TEXT.split() + SUMMARY_TEXT.split()) if w not in special]
    vocab = {w: i for i, w in enumerate(words + [f"w{i}" for i in range(8192 - len(words))])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    single, pair = ("$A </s>", "$A $B </s>") if kind == "marian" else ("<s> $A </s>", "<s> $A </s> </s> $B </s>")
    tok.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                       special_tokens=[(t, vocab[t]) for t in ("<s>", "</s>")])
    sizes = dict(vocab_size=len(vocab), d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_position_embeddings=512)
    if kind == "marian":
        config = tf.MarianConfig(**sizes, activation_function="swish", scale_embedding=True, pad_token_id=1,
                                 eos_token_id=2, decoder_start_token_id=1, forced_eos_token_id=2)
        tf.MarianMTModel(config).save_pretrained(folder)
    else:
        config = tf.BartConfig(**sizes, bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
                               forced_bos_token_id=0, forced_eos_token_id=2)
        tf.BartForConditionalGeneration(config).save_pretrained(folder)
    save_tokenizer(tok, folder, {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"})
    return folder


def _embedded_or(name: str, fallback):
    """The embedded checkpoint, or (when it is not built on this machine) a random one of a similar size."""
    try:
        return EMBEDDED[name]()
    except Exception as error:  # noqa: BLE001 - reported, then the fallback is measured instead
        print(f"({name} unavailable: {error}; using random weights of a similar size)")
        return fallback()


def cases(scratch: Path) -> dict[str, Callable[[], tuple[str, object, dict]]]:
    """task -> a maker of (folder, input, transformers call kwargs), so only the tasks asked for build models."""
    speech = ROOT / "sample_data" / "speech" / "clip_01.wav"
    image = ROOT / "sample_data" / "images" / "digit_7.png"
    return {
        "fill-mask": lambda: (_bert(scratch / "mlm", "BertForMaskedLM"), "the cat [MASK] on the mat .", {}),
        "text-classification": lambda: (_embedded_or("minilm-sentiment", lambda: _bert(scratch / "cls", "BertForSequenceClassification")),
                                        "I love this film, it was wonderful.", {}),
        "token-classification": lambda: (_bert(scratch / "ner", "BertForTokenClassification", num_labels=5), TEXT, {}),
        "question-answering": lambda: (_bert(scratch / "qa", "BertForQuestionAnswering"),
                                       {"question": "who barked ?", "context": TEXT}, {}),
        "text-generation": lambda: (EMBEDDED["smollm2"](), "The capital of France is",
                                    {"max_new_tokens": 20, "do_sample": False}),
        "image-classification": lambda: (EMBEDDED["vit-digits"](), str(image), {}),
        "automatic-speech-recognition": lambda: (EMBEDDED["whisper-tiny.en"](), str(speech),
                                                 {"generate_kwargs": {"num_beams": 1}}),
        "audio-classification": lambda: (_wav2vec2_cls(scratch / "w2v2"), {"raw": noise_clip(3.0), "sampling_rate": 16000}, {}),
        "translation": lambda: (_seq2seq(scratch / "marian", "marian"), TEXT, SEQ2SEQ_CALL),
        "summarization": lambda: (_seq2seq(scratch / "bart", "bart"), SUMMARY_TEXT, SEQ2SEQ_CALL),
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
        for task, make in table.items():
            if args.tasks and task not in args.tasks:
                continue
            folder, inputs, their_kwargs = make()
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
