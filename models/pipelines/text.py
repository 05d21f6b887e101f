"""Text pipelines over the instrumented core: fill-mask, text-classification, token-classification,
question-answering and text-generation, with transformers' output shapes and defaults."""
from __future__ import annotations

from typing import Any

import torch

from ..deferred_patterns import DEFERRED
from ..errors import InputError
from .base import Pipeline, classification_scores, register_pipeline, top_labels, with_trace


@register_pipeline
class FillMaskPipeline(Pipeline):
    """[{"score", "token", "token_str", "sequence"}] for the top_k fillers of the mask (top_k=5)."""
    task, tasks_served = "fill-mask", ("masked-lm",)

    def check_model(self) -> None:
        if self.model.task != "masked-lm":
            raise InputError(f"fill-mask needs a masked-language-model head (e.g. BertForMaskedLM); "
                             f"{self.model.name} has {self.model.task or 'none'} (MiniLM ships without one).")

    def run_one(self, text: str, top_k: int = 5):
        tokenizer = self.model.tokenizer
        mask_token = tokenizer.special.get("mask_token")
        if not isinstance(text, str) or mask_token is None or mask_token not in text:
            raise InputError(f"fill-mask needs a text with the mask token {mask_token!r} in it.")
        trace = self.model.run(text, capture=DEFERRED)
        mask_id = tokenizer.token_to_id(mask_token)
        ids = trace.input_ids[0]
        positions = (ids == mask_id).nonzero().flatten().tolist()
        results = []
        for pos in positions:
            probs = trace.logits[0, pos].float().softmax(-1)  # (vocab,)
            values, indices = probs.topk(top_k)
            row = []
            for v, i in zip(values, indices):
                filled = ids.clone()
                filled[pos] = i
                real = [t for t in filled.tolist()]
                row.append({"score": float(v), "token": int(i), "token_str": tokenizer.decode([int(i)]),
                            "sequence": tokenizer.decode(real, skip_special_tokens=True)})
            results.append(row)
        return (results[0] if len(results) == 1 else results), trace


@register_pipeline
class TextClassificationPipeline(Pipeline):
    """[{"label", "score"}]: the best label (top_k=1), or the top_k labels."""
    task, tasks_served = "text-classification", ("sequence-classification",)

    def __call__(self, inputs: Any = None, **kwargs: Any):
        out = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and kwargs.get("top_k", self.defaults.get("top_k", 1)) == 1:
            # transformers returns one dict per text for a batch with top_k=1
            return [with_trace(dict(one[0]), one.trace, one.seconds) for one in out]
        return out

    def run_one(self, text, top_k: int | None = 1):
        trace = self.model.run(text, capture=DEFERRED)
        scores = classification_scores(trace.logits[0], self.model.config.hf_config.get("problem_type"))
        return top_labels(scores, self.model.labels, top_k), trace


@register_pipeline
class TokenClassificationPipeline(Pipeline):
    """[{"entity", "score", "index", "word", "start", "end"}] per token not labelled "O" (no aggregation)."""
    task, tasks_served = "token-classification", ("token-classification",)

    def run_one(self, text: str, ignore_labels: tuple[str, ...] = ("O",)):
        if not isinstance(text, str) or not text.strip():
            raise InputError("token-classification needs a non-empty text.")
        trace = self.model.run(text, capture=DEFERRED)
        encoding = self.model.tokenizer.backend.encode(text)
        probs = trace.logits[0].float().softmax(-1)  # (T, labels)
        results = []
        for index, (token, special, offsets) in enumerate(zip(encoding.tokens, encoding.special_tokens_mask,
                                                               encoding.offsets)):
            if special or index >= probs.shape[0]:
                continue
            score, label = probs[index].max(-1)
            entity = self.model.labels.get(int(label), f"LABEL_{int(label)}")
            if entity in ignore_labels:
                continue
            results.append({"entity": entity, "score": float(score), "index": index, "word": token,
                            "start": offsets[0], "end": offsets[1]})
        return results, trace


@register_pipeline
class QuestionAnsweringPipeline(Pipeline):
    """{"score", "start", "end", "answer"}: the best span of the context (at most 15 tokens)."""
    task, tasks_served = "question-answering", ("question-answering",)

    def __call__(self, inputs: Any = None, question: str | None = None, context: str | None = None, **kwargs: Any):
        if inputs is None and question is not None:
            inputs = {"question": question, "context": context}
        return super().__call__(inputs, **kwargs)

    def run_one(self, one: Any, max_answer_len: int = 15):
        if isinstance(one, dict):
            question, context = one.get("question"), one.get("context")
        elif isinstance(one, (tuple, list)) and len(one) == 2:
            question, context = one
        else:
            raise InputError("question-answering needs question= and context= (or a {'question', 'context'} dict).")
        if not question or not context:
            raise InputError("question-answering needs a non-empty question and context.")
        trace = self.model.run([(question, context)], capture=DEFERRED)
        encoding = self.model.tokenizer.backend.encode(question, context)
        in_context = torch.tensor([s == 1 for s in encoding.sequence_ids])  # (T,)
        T = min(len(in_context), trace.logits.shape[1])
        logits = trace.logits[0, :T].float()  # (T, 2)
        cls_id = self.model.tokenizer.token_to_id(self.model.tokenizer.special.get("cls_token", "[CLS]"))
        is_cls = trace.input_ids[0, :T] == (cls_id if cls_id is not None else -1)
        # as transformers: [CLS] takes part in the softmax (models mark "no answer" there), then cannot be the answer
        allowed = in_context[:T] | is_cls
        start = logits[:, 0].masked_fill(~allowed, -10000.0).softmax(-1)  # (T,)
        end = logits[:, 1].masked_fill(~allowed, -10000.0).softmax(-1)  # (T,)
        pair = start[:, None] * end[None, :]  # (T, T): start s, end e
        span_ok = in_context[:T, None] & in_context[None, :T]
        valid = torch.ones(T, T).triu() * torch.ones(T, T).tril(max_answer_len - 1) * span_ok
        pair = pair * valid
        flat = int(pair.argmax())
        s, e = divmod(flat, T)
        begin, finish = encoding.offsets[s][0], encoding.offsets[e][1]
        return {"score": float(pair[s, e]), "start": begin, "end": finish, "answer": context[begin:finish]}, trace


@register_pipeline
class TextGenerationPipeline(Pipeline):
    """[{"generated_text": prompt + continuation}], greedy (max_new_tokens=20)."""
    task, tasks_served = "text-generation", ("causal-lm",)

    def run_one(self, prompt: str, max_new_tokens: int = 20, return_full_text: bool = True):
        if not isinstance(prompt, str) or not prompt:
            raise InputError("text-generation needs a non-empty prompt.")
        new, trace = self.model.generate_traced(prompt, max_new_tokens=max_new_tokens)
        ids = trace.input_ids[0].tolist()
        prompt_ids = ids[: len(ids) - len(new)]
        # as transformers: decode everything, then cut the decoded prompt off (spacing between them is kept)
        tok = self.model.tokenizer
        full = tok.decode(prompt_ids + new, skip_special_tokens=True)
        continuation = full[len(tok.decode(prompt_ids, skip_special_tokens=True)):]
        return [{"generated_text": (prompt + continuation) if return_full_text else continuation}], trace
