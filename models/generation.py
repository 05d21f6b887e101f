"""Greedy decoding with the key/value cache: one loop for causal LMs and for encoder-decoders.

Each step runs only the newest tokens; the cache (one dict per decoder layer, filled by the
attention modules) holds everything before them, and an encoder-decoder's cross-attention keys
and values too. Head masks active in the caller's context apply to every step.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from .deferred_patterns import DEFERRED
from .errors import InputError
from .generation_trace import trace_from_steps
from .trace import Trace

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel

# step(ids (B, t)) -> (next-token logits (B, vocab), the step's whole output)
Step = Callable[[torch.Tensor], "tuple[torch.Tensor, Any]"]


def greedy_decode(step: Step, prompt: torch.Tensor, max_new_tokens: int, eos_token_id: int | Sequence[int] | None,
                  suppress: Sequence[int] = (), begin_suppress: Sequence[int] = (),
                  keep_outputs: bool = False) -> tuple[list[list[int]], list[Any], torch.Tensor]:
    """New tokens per row of `prompt` (B, P), each ending with the end token if reached; the steps' outputs
    (if kept); and the last new tokens (B, 1), which no step has run yet. `suppress` ids are never chosen,
    `begin_suppress` ids not as the first token (Whisper's generation config). `eos_token_id` may be a list
    (Llama 3's configs name several end tokens): any of them ends a row, as in transformers' generate."""
    B = prompt.shape[0]
    ends = None if eos_token_id is None else torch.tensor(
        [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id), dtype=torch.long)
    if ends is not None and not len(ends):
        ends = None
    new: list[list[int]] = [[] for _ in range(B)]
    outputs: list[Any] = []
    finished = torch.zeros(B, dtype=torch.bool)
    suppress_t = torch.tensor(list(suppress), dtype=torch.long)
    begin_t = torch.tensor(list(begin_suppress), dtype=torch.long)
    ids = prompt
    for index in range(max_new_tokens):
        logits, out = step(ids)
        if keep_outputs:
            outputs.append(out)
        logits = logits.float()  # (B, vocab)
        if len(suppress_t):
            logits[:, suppress_t] = -torch.inf
        if index == 0 and len(begin_t):
            logits[:, begin_t] = -torch.inf
        next_ids = logits.argmax(-1)  # (B,)
        if ends is not None:
            next_ids = torch.where(finished, torch.full_like(next_ids, int(ends[0])), next_ids)
        for row in range(B):
            if not finished[row]:
                new[row].append(int(next_ids[row]))
        ids = next_ids[:, None]  # (B, 1): the cache holds everything before it
        if ends is not None:
            finished |= torch.isin(next_ids, ends)
        if bool(finished.all()):
            break
    return new, outputs, ids


def decode_text(model: "WorkbenchModel", ids: torch.Tensor, max_new_tokens: int,
                capture: bool | str) -> tuple[list[int], list[Any]]:
    """Greedy continuation of a causal LM from the prompt `ids` (1, T); with capture, every step's output is
    kept and the last new token is run too (so a trace covers it)."""
    if model.task != "causal-lm":
        raise InputError(f"{model.display_name} has no language-modelling head to generate with.")
    cache: list[dict[str, torch.Tensor]] = [{} for _ in model.network.blocks]

    def step(step_ids: torch.Tensor):
        out = model.forward(input_ids=step_ids, capture=capture, cache=cache)  # logits (1, t, vocab)
        return out.logits[:, -1], out

    steps = min(max_new_tokens, model.config.max_positions - ids.shape[1])
    new, outputs, last = greedy_decode(step, ids, steps, model.config.eos_token_id, keep_outputs=bool(capture))
    if capture and new[0]:
        outputs.append(model.forward(input_ids=last, capture=capture, cache=cache))
    return new[0], outputs


def generate_traced(model: "WorkbenchModel", text: str, max_new_tokens: int) -> tuple[list[int], Trace]:
    """Greedy continuation and the trace of prompt + continuation, assembled from the decoding steps (one extra
    one-token step runs the last new token; see models/generation_trace.py). Patterns are deferred."""
    encoded = model.encode(text)
    new, steps = decode_text(model, encoded.input_ids, max_new_tokens, capture=DEFERRED)
    ids = encoded.input_ids[0].tolist() + new
    trace = trace_from_steps(model, ids, steps) if steps else None
    if trace is None:  # a hook on the patterns saw them step by step (or nothing was generated): run once more
        trace = model.run(input_ids=torch.tensor([ids]), capture=DEFERRED)
    trace.texts, trace.warnings = [text], list(encoded.warnings)
    return new, trace
