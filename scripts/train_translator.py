"""Train the embedded `numbers-to-words` model: a tiny T5 that writes numbers in English words.

    "4071" -> "four thousand seventy one"

Reproduce (CPU, one thread; about 5-10 minutes, longer on a busy machine):

    .venv/bin/python scripts/train_translator.py

Writes a Hugging Face folder to `models/embedded/numbers-to-words/` (config.json,
model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json,
special_tokens_map.json, README.md) that `T5ForConditionalGeneration.from_pretrained` and
`AutoTokenizer.from_pretrained` load offline.

Convention (one, no variants): American style without "and", hyphens or commas; tens and units
as two words ("seventy one"); "zero" for 0; thousands as "<n> thousand" ("one thousand two
hundred", never "twelve hundred").

Data: every integer 0..9999. A seeded permutation holds out 1,000 of them (never seen in
training, not used for model selection); the other 9,000 train. Held-out exact match is
greedy decoding (transformers' `generate`, one beam) compared word for word with the reference.

Tokenizer: a `tokenizers` WordLevel model built here: every digit is one token (the
pre-tokenizer splits digits one by one), every number word is one token, plus <pad> (0),
</s> (1, appended to every sequence as T5 does) and <unk> (2).

Determinism: fixed seed, `torch.use_deterministic_algorithms(True)`, one thread.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import GenerationConfig, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

REPO_ROOT = Path(__file__).resolve().parents[1]
NAME = "numbers-to-words"
DEFAULT_OUT = REPO_ROOT / "models" / "embedded" / NAME

N_NUMBERS = 10_000   # 0..9999
N_HELD_OUT = 1_000
SPLIT_SEED = 1234    # the split has its own seed so training seeds never move it
MAX_NEW_TOKENS = 12  # the longest target, "seven thousand seven hundred seventy seven", is 6 words + </s>

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SPECIAL = ["<pad>", "</s>", "<unk>"]


def number_to_words(n: int) -> str:
    """0..999,999 in the card's convention: 4071 -> 'four thousand seventy one'."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"{n} is outside 0..999,999")
    if n == 0:
        return "zero"

    def below_thousand(k: int) -> list[str]:
        words = []
        if k >= 100:
            words += [ONES[k // 100], "hundred"]
            k %= 100
        if k >= 20:
            words.append(TENS[k // 10])
            k %= 10
        if k:
            words.append(ONES[k])
        return words

    words = below_thousand(n // 1000) + ["thousand"] if n >= 1000 else []
    return " ".join(words + below_thousand(n % 1000))


def split_numbers() -> tuple[list[int], list[int]]:
    """(train, held_out): a seeded permutation of 0..9999, the first 1,000 held out, both sorted."""
    order = torch.randperm(N_NUMBERS, generator=torch.Generator().manual_seed(SPLIT_SEED)).tolist()
    return sorted(order[N_HELD_OUT:]), sorted(order[:N_HELD_OUT])


def vocabulary() -> list[str]:
    words = ONES + [t for t in TENS if t] + ["hundred", "thousand"]
    return SPECIAL + [str(d) for d in range(10)] + words


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {token: i for i, token in enumerate(vocabulary())}
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    # words split on spaces, then every digit on its own: "4071" -> 4 0 7 1
    backend.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                     pre_tokenizers.Digits(individual_digits=True)])
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                   unk_token="<unk>", model_max_length=64)


def make_config(vocab_size: int, dropout: float) -> T5Config:
    # T5 v1.0 style: ReLU feed-forward, input and output embeddings tied (the LM head rescales by d_model^-0.5)
    return T5Config(vocab_size=vocab_size, d_model=128, d_kv=32, d_ff=512, num_layers=3, num_decoder_layers=3,
                    num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
                    dropout_rate=dropout, feed_forward_proj="relu", tie_word_embeddings=True,
                    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)


def encode(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
    return batch["input_ids"], batch["attention_mask"]


@torch.no_grad()
def translate(model: T5ForConditionalGeneration, tokenizer: PreTrainedTokenizerFast, numbers: list[int],
              batch_size: int = 250) -> list[str]:
    """Greedy decoding with transformers' generate."""
    model.eval()
    out = []
    for i in range(0, len(numbers), batch_size):
        ids, mask = encode(tokenizer, [str(n) for n in numbers[i:i + batch_size]])
        generated = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, num_beams=1,
                                   max_new_tokens=MAX_NEW_TOKENS)
        out += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return out


def exact_match(model, tokenizer, numbers: list[int]) -> tuple[float, list[tuple[int, str]]]:
    predictions = translate(model, tokenizer, numbers)
    wrong = [(n, p) for n, p in zip(numbers, predictions) if p != number_to_words(n)]
    return 1 - len(wrong) / len(numbers), wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument("--warmup-steps", type=int, default=300)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--eval-every", type=int, default=1000)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    t_start, cpu_start = time.perf_counter(), time.process_time()
    tokenizer = build_tokenizer()
    train, held_out = split_numbers()
    assert not set(train) & set(held_out)
    src_ids, src_mask = encode(tokenizer, [str(n) for n in train])
    tgt_ids, _ = encode(tokenizer, [number_to_words(n) for n in train])
    labels = tgt_ids.masked_fill(tgt_ids == tokenizer.pad_token_id, -100)  # no loss on padding

    model = T5ForConditionalGeneration(make_config(len(tokenizer), args.dropout))
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "shared" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "shared" not in n)]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    scheduler = transformers.get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, args.steps)
    gen = torch.Generator().manual_seed(args.seed)

    t_train = time.perf_counter()
    order, cursor, running = torch.randperm(len(train), generator=gen), 0, 0.0
    for step in range(1, args.steps + 1):
        model.train()
        if cursor + args.batch_size > len(order):  # a new epoch: a new shuffle
            order, cursor = torch.randperm(len(train), generator=gen), 0
        idx = order[cursor:cursor + args.batch_size]
        cursor += args.batch_size
        # trim the batch to its longest row: shorter tensors, same loss
        width_src, width_tgt = int(src_mask[idx].sum(1).max()), int((labels[idx] != -100).sum(1).max())
        loss = model(input_ids=src_ids[idx, :width_src], attention_mask=src_mask[idx, :width_src],
                     labels=labels[idx, :width_tgt]).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        running += loss.item()
        if step % args.eval_every == 0 or step == args.steps:
            # progress on a fixed slice of the training numbers only: the held-out set is read once, at the end
            train_em, _ = exact_match(model, tokenizer, train[::9])
            print(f"step {step:5d}  loss {running / args.eval_every:.4f}  train exact match (1/9 of it) "
                  f"{100 * train_em:.2f}%  {time.perf_counter() - t_train:.0f} s", flush=True)
            running = 0.0
    train_seconds = time.perf_counter() - t_train

    model.eval()
    train_em, _ = exact_match(model, tokenizer, train)
    held_em, wrong = exact_match(model, tokenizer, held_out)
    total_seconds, cpu_seconds = time.perf_counter() - t_start, time.process_time() - cpu_start

    args.out.mkdir(parents=True, exist_ok=True)
    model.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                                               max_new_tokens=MAX_NEW_TOKENS, do_sample=False, num_beams=1)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    weights = args.out / "model.safetensors"
    facts = dict(n_params=n_params, weight_bytes=weights.stat().st_size,
                 weight_sha256=hashlib.sha256(weights.read_bytes()).hexdigest(), train_em=train_em,
                 held_em=held_em, wrong=wrong, n_held=len(held_out), n_train=len(train),
                 train_seconds=train_seconds, total_seconds=total_seconds, cpu_seconds=cpu_seconds)
    (args.out / "README.md").write_text(model_card(args, **facts))
    print(json.dumps({"held_out_exact_match": round(100 * held_em, 2), "held_out_wrong": len(wrong),
                      "train_exact_match": round(100 * train_em, 2), "train_seconds": round(train_seconds, 1),
                      "weight_bytes": facts["weight_bytes"], "wrong": wrong[:20]}))


def model_card(args, *, n_params, weight_bytes, weight_sha256, train_em, held_em, wrong, n_held, n_train,
               train_seconds, total_seconds, cpu_seconds) -> str:
    n_right = n_held - len(wrong)
    wrong_rows = "\n".join(f"| {n} | {p} | {number_to_words(n)} |" for n, p in wrong[:40]) or "| - | - | - |"
    if len(wrong) > 40:
        wrong_rows += f"\n| ... | {len(wrong) - 40} more | |"
    return f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text2text-generation
tags:
- t5
- toy
- interpretability
model-index:
- name: {NAME}
  results:
  - task:
      type: text2text-generation
      name: numbers in digits to English words
    dataset:
      type: synthetic
      name: integers 0-9999, {n_held} held out (split seed {SPLIT_SEED})
    metrics:
    - type: exact_match
      value: {100 * held_em:.2f}
      name: held-out exact match, greedy
---

# {NAME}

A tiny T5 (encoder-decoder) trained by the Transformer Workbench project to write numbers in
digits as English words. It is the workbench's embedded text-to-text model: small enough to
commit and to load offline at once, and its cross-attention shows which digit each word reads.

    "4071" -> "four thousand seventy one"

**Held-out exact match: {100 * held_em:.2f}%** ({n_right} / {n_held} numbers never seen in training,
greedy decoding). Training numbers: {100 * train_em:.2f}% of {n_train}.

## Convention

American style without "and", hyphens or commas: "seventy one", "one hundred five",
"one thousand two hundred" (never "twelve hundred"), "zero" for 0. Input is the number in plain
digits, 0..9999, no leading zeros, no separators. Anything else (larger numbers, leading zeros,
words) is outside what it was trained on and comes out wrong.

## Architecture

`transformers.T5ForConditionalGeneration` (`T5Config` in `config.json`), T5 v1.0 style:

| field | value |
|---|---|
| d_model | 128 |
| layers | 3 encoder, 3 decoder |
| heads | 4 (d_kv 32) |
| d_ff | 512, ReLU (`feed_forward_proj: relu`) |
| position | T5 relative position buckets (32 buckets, max distance 128), first layer of each stack |
| embeddings | one shared table, tied to the LM head (`tie_word_embeddings: true`) |
| vocabulary | {len(vocabulary())} tokens: `<pad>` 0 (also the decoder start), `</s>` 1, `<unk>` 2, digits 0-9, 30 number words |
| parameters | {n_params:,} |
| weights | `model.safetensors`, float32, {weight_bytes:,} bytes, sha256 `{weight_sha256}` |

## Tokenizer

A `tokenizers` WordLevel model built by the training script (`tokenizer.json`): whitespace split,
then every digit its own token ("4071" -> `4 0 7 1 </s>`); every number word one token;
`</s>` appended to every sequence. `tokenizer_config.json` and `special_tokens_map.json` make
`AutoTokenizer.from_pretrained` load it as a `PreTrainedTokenizerFast`.

## Data and split

Every integer 0..9999, written by `number_to_words` in `scripts/train_translator.py`. A
permutation of the 10,000 numbers from `torch.randperm` with its own generator seed ({SPLIT_SEED})
holds out its first {n_held} numbers; the other {n_train} train. The held-out numbers were never
trained on, never used for early stopping or choosing hyperparameters during the run (progress is
printed on a fixed ninth of the training numbers), and are read once, after training.
`split_numbers()` in the script gives the two lists.

## Training

| hyperparameter | value |
|---|---|
| objective | cross-entropy on the target words and `</s>` (teacher forcing), no loss on padding |
| optimiser | AdamW, lr {args.lr:g}, weight decay {args.weight_decay:g} on matrices (not on the embedding table or layer norms) |
| schedule | linear warm-up {args.warmup_steps} steps, cosine decay to 0 |
| steps | {args.steps} of batch {args.batch_size} (about {args.steps * args.batch_size / n_train:.0f} epochs) |
| dropout | {args.dropout:g} (training only) |
| gradient clipping | max norm 1.0 |
| seed | {args.seed} (`torch.manual_seed`, a `torch.Generator` for shuffling) |
| determinism | `torch.use_deterministic_algorithms(True)`, `torch.set_num_threads(1)` |
| training time | {train_seconds:.0f} s wall clock for the training loop ({total_seconds:.0f} s for the whole script, {cpu_seconds:.0f} s of CPU time), 1 CPU thread, on a shared machine other jobs were loading |
| software | torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, Python {platform.python_version()} |

The checkpoint is the state after the last step.

## Held-out mistakes

| number | model | reference |
|---|---|---|
{wrong_rows}

## Reproduce

From the repository root:

```
.venv/bin/python scripts/train_translator.py
```

(defaults: `--seed {args.seed} --steps {args.steps} --batch-size {args.batch_size} --lr {args.lr:g}
--weight-decay {args.weight_decay:g} --warmup-steps {args.warmup_steps} --dropout {args.dropout:g}`).
Deterministic on one machine with the same library versions; other CPUs or versions may differ
in the last bits, and the exact match by a few numbers.
`tests/models/test_translator_embedded.py` checks the committed checkpoint against the figure above.

## Use

```python
from transformers import AutoTokenizer, T5ForConditionalGeneration
model = T5ForConditionalGeneration.from_pretrained("models/embedded/{NAME}")
tokenizer = AutoTokenizer.from_pretrained("models/embedded/{NAME}")
ids = tokenizer(["4071"], return_tensors="pt", return_token_type_ids=False)
print(tokenizer.batch_decode(model.generate(**ids), skip_special_tokens=True))  # ['four thousand seventy one']
```

or, in the workbench, `load_model("{NAME}")`.

## Limitations

A teaching model for looking at cross-attention, not a number formatter: it knows 0..9999 in
one convention and nothing else.
"""


if __name__ == "__main__":
    main()
