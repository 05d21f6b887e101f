"""The Python, on the core's and analysis' public API, that reproduces what the Interventions page shows.

Researchers paste it into a notebook run from the repository root; a test executes it and compares
with the page. Values are written with ``repr`` so texts with quotes or newlines survive.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PatchingCode:
    clean: object
    corrupted: object
    answer: str
    wrong: str
    sites: Sequence[str]
    layers: Sequence[int] | None        # None = every layer
    exact: bool                          # exact patching was run (not only the attribution estimate)
    cell: tuple[str, int, int] | None    # (site, layer, position or head) of the patched run shown


@dataclass(frozen=True)
class SteeringCode:
    positive: Sequence[str]
    negative: Sequence[str]
    layer: int
    reduce: str
    alpha: float
    prompt: str
    max_new_tokens: int
    uploaded: str | None = None          # file name, when the vector was uploaded instead of built
    generates: bool = True               # False: a classifier, whose steered prediction is shown


@dataclass(frozen=True)
class GenerationCode:
    prompt: str
    n_steps: int
    strategy: str
    temperature: float
    top_k: int | None
    seed: int
    steered: bool                        # alpha * v added during generation (the steering section's vector)


def _layers_arg(layers: Sequence[int] | None) -> str:
    if layers is None:
        return ""
    layers = list(layers)
    if layers == list(range(layers[0], layers[-1] + 1)):
        return f", layers=range({layers[0]}, {layers[-1] + 1})"
    return f", layers={layers!r}"


def interventions_code(model_expression: str, patching: PatchingCode | None = None,
                       steering: SteeringCode | None = None, generation: GenerationCode | None = None) -> str:
    lines = ["from models import load_model"]
    if patching:
        lines.append("from analysis.patching import patched_run, patching_experiment")
    if steering or (generation and generation.steered):
        lines.append("from analysis.steering import "
                     + ("compare_steering, " if steering and steering.generates else "")
                     + ("steered_prediction, " if steering and not steering.generates else "")
                     + ("load_steering_vector" if steering and steering.uploaded else "save_steering_vector, steering_vector")
                     + (", steering_hooks" if generation and generation.steered else ""))
    if generation:
        lines.append("from analysis.generation import Sampling, step_through_generation")
    lines += ["", f"model = {model_expression}"]
    if patching:
        p = patching
        lines += [
            "",
            "# activation patching: the corrupted prompt run once per patch, one activation taken from the clean run",
            f"clean = {p.clean!r}",
            f"corrupted = {p.corrupted!r}",
            f"result = patching_experiment(model, clean, corrupted, answer={p.answer!r}, wrong={p.wrong!r}, "
            f"sites={list(p.sites)!r}{_layers_arg(p.layers)}, exact={p.exact!r})",
            "result.clean_metric, result.corrupted_metric  # logit[answer] - logit[wrong] at the last position",
        ]
        first = p.sites[0]
        if p.exact:
            lines.append(f"result.exact[{first!r}]  # (layers, positions | heads): the metric of each patched run")
            lines.append(f"result.correlation({first!r})  # exact against attribution patching (Pearson)")
        lines += [f"result.attribution[{first!r}]  # first-order estimate: one forward and one backward pass",
                  "result.to_frame().to_csv('patching.csv', index=False)  # the page's CSV"]
        if p.cell is not None:
            site, layer, index = p.cell
            lines += [f"run = patched_run(model, clean, corrupted, {site!r}, {p.answer!r}, {p.wrong!r}, "
                      f"layer={layer}, index={index})",
                      "run.metric, run.restored  # that cell's patched run; restored = (patched - corrupted) / (clean - corrupted)",
                      "run.prediction  # clean, corrupted and patched probabilities of the top outputs"]
    if steering:
        s = steering
        lines += ["", "# steering: the difference of mean residual streams entering a block, added as alpha * v"]
        if s.uploaded:
            lines.append(f"vector = load_steering_vector({s.uploaded!r})")
        else:
            lines += [f"vector = steering_vector(model, positive={list(s.positive)!r}, negative={list(s.negative)!r}, "
                      f"layer={s.layer}, reduce={s.reduce!r})",
                      "save_steering_vector(vector, 'steering_vector.safetensors')"]
        if s.generates:
            lines += [f"comparison = compare_steering(model, {s.prompt!r}, vector, alpha={s.alpha!r}, "
                      f"max_new_tokens={s.max_new_tokens})",
                      "print(comparison.plain_text)", "print(comparison.steered_text)"]
        else:
            lines.append(f"steered_prediction(model, {s.prompt!r}, vector, alpha={s.alpha!r})  # plain vs steered")
    if generation:
        g = generation
        sampling = (f"Sampling('sample', temperature={g.temperature!r}, top_k={g.top_k!r}, seed={g.seed!r})"
                    if g.strategy == "sample" else "Sampling('greedy')")
        call = f"step_through_generation(model, {g.prompt!r}, max_new_tokens={g.n_steps}, sampling={sampling})"
        lines += ["", "# generation one token at a time"]
        if g.steered and steering:
            lines += [f"with model.hooks(steering_hooks(model, vector, alpha={steering.alpha!r})):",
                      f"    view = {call}"]
        else:
            lines.append(f"view = {call}")
        lines += ["view.to_frame()  # one row per step: token, probability, the layer where it was decided",
                  "step = view.steps[-1]",
                  "step.top  # top next-token probabilities, the model's and the sampler's",
                  "step.attention  # (layers, heads, context): the new position's attention",
                  "step.lens_frame()  # logit lens at the new position"]
    return "\n".join(lines) + "\n"


__all__ = ["interventions_code", "PatchingCode", "SteeringCode", "GenerationCode"]
