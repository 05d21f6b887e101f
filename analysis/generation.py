"""Generation one token at a time, with what the model looked at and where in depth it decided.

Each step runs the context (prompt + tokens chosen so far) and records, at the position whose
output chooses the next token:
  - that position's attention over the context, per layer and head;
  - the logit lens there (nostalgebraist 2020): each layer's guess, the probability it gives the token
    finally chosen, and the first layer from which that token stays on top ("decided at");
  - the top next-token probabilities, as the model gives them and as the sampler draws from them
    (after temperature and top-k), in the manner of Transformer Explainer (Cho et al. 2024).
Sampling is reproducible: step ``i`` draws with a generator seeded from ``(seed, i)``, so stepping one
token at a time gives exactly what a single call gives.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from models.errors import InputError

from .hidden_states import residual_stream
from .lens import unembed

STRATEGIES = ("greedy", "sample")


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen: ``greedy`` (argmax), or ``sample`` from softmax(logits / temperature)
    restricted to the ``top_k`` most likely tokens (None or 0 = all)."""
    strategy: str = "greedy"
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError(f"Unknown strategy {self.strategy!r}; choose 'greedy' or 'sample'.")
        if self.strategy == "sample" and not self.temperature > 0:
            raise InputError(f"Temperature must be above 0 to sample; got {self.temperature}. Use greedy for 0.")
        if self.top_k is not None and self.top_k < 0:
            raise InputError(f"top_k must be 0 (all tokens) or more; got {self.top_k}.")

    def generator(self, step: int) -> torch.Generator:
        """The generator of step ``step``: independent of how the steps were split between calls."""
        return torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(step))


def sampling_distribution(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """(vocab,) the distribution the next token is drawn from; greedy puts all mass on the argmax."""
    logits = logits.double()
    if sampling.strategy == "greedy":
        probs = torch.zeros_like(logits)
        probs[int(logits.argmax())] = 1.0
        return probs
    scaled = logits / sampling.temperature
    if sampling.top_k:
        k = min(int(sampling.top_k), scaled.shape[-1])
        threshold = scaled.topk(k).values[-1]
        scaled = scaled.masked_fill(scaled < threshold, float("-inf"))
    return scaled.softmax(-1)


def choose_token(logits: torch.Tensor, sampling: Sampling, step: int) -> int:
    """The next token id from (vocab,) logits: the argmax, or a draw from `sampling_distribution`."""
    if sampling.strategy == "greedy":
        return int(logits.argmax())
    probs = sampling_distribution(logits, sampling)
    return int(torch.multinomial(probs.float(), 1, generator=sampling.generator(step)))


@dataclass(frozen=True)
class GenerationStep:
    index: int                       # 0 for the first new token
    position: int                    # the context position whose output chose the token (the last one)
    context_tokens: list[str]        # the tokens the model read at this step
    token_id: int
    token: str
    probability: float               # the model's probability of the chosen token (temperature 1)
    sampling_probability: float      # its probability under the sampler (1.0 for greedy)
    top: pd.DataFrame                # rank, token, id, logit, probability, sampling_probability
    attention: torch.Tensor          # (n_layers, n_heads, context) this position's attention; NaN for pruned heads
    lens_top_tokens: list[str]       # (n_layers + 1) each layer's top token here (0 = embeddings)
    lens_top_probs: torch.Tensor     # (n_layers + 1,) its probability
    lens_token_probs: torch.Tensor   # (n_layers + 1,) the probability each layer gives the chosen token
    lens_token_ranks: torch.Tensor   # (n_layers + 1,) its rank (0 = top)
    decided_at: int | None           # first layer from which the chosen token is top-1 to the end; None if never

    def lens_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"layer": list(range(len(self.lens_top_tokens))), "top_token": self.lens_top_tokens,
                             "top_probability": self.lens_top_probs.tolist(),
                             "chosen_token_probability": self.lens_token_probs.tolist(),
                             "chosen_token_rank": self.lens_token_ranks.tolist()})


@dataclass
class GenerationView:
    prompt: str
    prompt_ids: list[int]
    sampling: Sampling
    steps: list[GenerationStep] = field(default_factory=list)

    @property
    def new_ids(self) -> list[int]:
        return [s.token_id for s in self.steps]

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.new_ids

    def to_frame(self) -> pd.DataFrame:
        """One row per step: the chosen token, its probabilities, where it was decided."""
        return pd.DataFrame([{"step": s.index, "position": s.position, "token": s.token, "id": s.token_id,
                              "probability": s.probability, "sampling_probability": s.sampling_probability,
                              "decided_at_layer": s.decided_at} for s in self.steps],
                            columns=["step", "position", "token", "id", "probability", "sampling_probability",
                                     "decided_at_layer"])


def _check_generator(model) -> None:
    if not getattr(model, "can_generate", model.task == "causal-lm") or model.task != "causal-lm":
        raise InputError(f"{getattr(model, 'name', '') or 'This model'} cannot generate: stepping through "
                         "generation needs a causal language model (e.g. smollm2).")


def start_generation(model, text: str, sampling: Sampling | None = None) -> GenerationView:
    """An empty view of the prompt: add tokens with `next_step`."""
    _check_generator(model)
    ids = model.encode(text).input_ids[0].tolist()
    return GenerationView(prompt=text, prompt_ids=ids, sampling=sampling or Sampling())


def is_finished(model, view: GenerationView, limit: int | None = None) -> bool:
    """True once the last token was end-of-sequence or the context is as long as the model allows."""
    eos = model.config.eos_token_id
    if view.steps and eos is not None and view.steps[-1].token_id == eos:
        return True
    longest = limit or getattr(model, "max_tokens", None) or 1024
    return len(view.ids) >= longest


@torch.no_grad()
def next_step(model, view: GenerationView, top_n: int = 10) -> GenerationStep:
    """Run the context once more and choose the next token; the step is appended to ``view`` and returned."""
    _check_generator(model)
    if is_finished(model, view):
        raise InputError("Generation has finished: the last token ended the text or the context is full.")
    ids = view.ids
    trace = model.run(input_ids=torch.tensor([ids]))
    position = len(ids) - 1
    logits = trace.logits[0, position].double()  # (vocab,)
    index = len(view.steps)
    token_id = choose_token(logits, view.sampling, index)
    probs = logits.softmax(-1)
    drawn = sampling_distribution(logits, view.sampling)
    k = min(int(top_n), probs.shape[-1])
    top_ids = torch.unique(torch.cat([probs.topk(k).indices, torch.tensor([token_id])]), sorted=False)
    top_ids = top_ids[probs[top_ids].argsort(descending=True)]
    token_of = model.tokenizer.id_to_token
    top = pd.DataFrame({"rank": [int((probs > probs[i]).sum()) for i in top_ids.tolist()],
                        "token": [token_of(i) for i in top_ids.tolist()], "id": top_ids.tolist(),
                        "logit": logits[top_ids].tolist(), "probability": probs[top_ids].tolist(),
                        "sampling_probability": drawn[top_ids].tolist()})
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    attention = torch.full((n_layers, n_heads, len(ids)), float("nan"))
    for layer, pattern in enumerate(trace.attentions):
        heads = trace.head_ids[layer] if trace.head_ids else list(range(pattern.shape[1]))
        if heads:
            attention[layer, heads] = pattern[0, :, position].float()  # (H_layer, context)
    states = residual_stream(trace)[:, position]  # (L+1, d)
    lens = unembed(model, states[None])[0].double().softmax(-1)  # (L+1, vocab)
    top_p, top_i = lens.max(-1)  # (L+1,)
    chosen_p = lens[:, token_id]
    ranks = (lens > chosen_p[:, None]).sum(-1)
    decided = None
    for layer in range(lens.shape[0] - 1, -1, -1):
        if int(top_i[layer]) != token_id:
            break
        decided = layer
    step = GenerationStep(index=index, position=position, context_tokens=list(trace.tokens[0]), token_id=token_id,
                          token=token_of(token_id), probability=float(probs[token_id]),
                          sampling_probability=float(drawn[token_id]), top=top, attention=attention,
                          lens_top_tokens=[token_of(int(i)) for i in top_i], lens_top_probs=top_p.float(),
                          lens_token_probs=chosen_p.float(), lens_token_ranks=ranks, decided_at=decided)
    view.steps.append(step)
    return step


def step_through_generation(model, text: str, max_new_tokens: int = 10, sampling: Sampling | None = None,
                            top_n: int = 10) -> GenerationView:
    """`start_generation` and `next_step` until ``max_new_tokens``, end-of-sequence or a full context."""
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1; got {max_new_tokens}.")
    view = start_generation(model, text, sampling)
    while len(view.steps) < max_new_tokens and not is_finished(model, view):
        next_step(model, view, top_n=top_n)
    return view


@torch.no_grad()
def generate_tokens(model, text: str, max_new_tokens: int = 20, sampling: Sampling | None = None) -> list[int]:
    """New token ids, greedy through ``model.generate`` (key/value cache) or sampled step by step with the
    same per-step generators as `next_step`. Hooks and head masks active in this context apply."""
    _check_generator(model)
    sampling = sampling or Sampling()
    if sampling.strategy == "greedy":
        return list(model.generate(text, max_new_tokens=max_new_tokens))
    ids = model.encode(text).input_ids[0].tolist()
    longest = getattr(model, "max_tokens", None) or 1024
    new: list[int] = []
    eos = model.config.eos_token_id
    while len(new) < max_new_tokens and len(ids) < longest:
        logits = model.run(input_ids=torch.tensor([ids]), capture=False).logits[0, -1]
        token = choose_token(logits, sampling, len(new))
        new.append(token)
        ids.append(token)
        if eos is not None and token == eos:
            break
    return new


def decode(model, ids: Sequence[int]) -> str:
    return model.tokenizer.decode(list(ids))


__all__ = ["Sampling", "STRATEGIES", "GenerationStep", "GenerationView", "sampling_distribution", "choose_token",
           "start_generation", "next_step", "is_finished", "step_through_generation", "generate_tokens", "decode"]
