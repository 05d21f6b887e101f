"""The few lines of Python, on the core's public API, that reproduce what a page shows: one module for every page.

Researchers paste them into a notebook run from the repository root, or save them as a script;
either way each snippet prints what the page shows (a bare expression at the end of a line
shows nothing in a script). Tests execute them and compare with the page. Every value is written with ``repr`` so texts with quotes or newlines
survive. The recipes (``prune_recipe``, ``add_tokens_recipe``, ``with_head_recipe``) are the
expressions a session-owned model remembers (`app.model_cache.add_session_model`), so a page's
code can start from a model made on another page.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Heads = Mapping[Any, Sequence[int]]  # layer -> head ids, as `model.mask_heads` and `model.prune_heads` take them


# ---------------------------------------------------------------- recipes: expressions that rebuild a model
def prune_recipe(model_expression: str, spec: Heads) -> str:
    """``load_model("minilm").prune_heads({1: [0, 2]})``: a pruned copy."""
    return f"{model_expression}.prune_heads({dict(spec)!r})"


def add_tokens_recipe(model_expression: str, tokens: Sequence[str], special: bool, init: str, seed: int) -> str:
    """A copy with a grown vocabulary."""
    return f"{model_expression}.add_tokens({list(tokens)!r}, special={special!r}, init={init!r}, seed={seed!r})"


def with_head_recipe(model_expression: str, task: str, labels: Sequence[str] | None = None) -> str:
    """The same body with another task head (labels for a classifier's classes)."""
    labels_arg = f", labels={list(labels)!r}" if labels else ""
    return f"{model_expression}.with_head({task!r}{labels_arg})"


# ---------------------------------------------------------------- Attention and Hidden states
def _run_lines(model_expression: str, text: object, mask: Heads | None) -> list[str]:
    lines = [f"model = {model_expression}", f"text = {text!r}"]
    if mask:
        lines += [f"with model.mask_heads({dict(mask)!r}):  # heads ablated for this run only",
                  "    trace = model.run(text)"]
    else:
        lines.append("trace = model.run(text)")
    return lines


def attention_code(model_expression: str, text: object, layer: int, head: int | str,
                   mask: Heads | None = None, residual_weight: float = 0.5) -> str:
    """Code for the Attention page: the heatmap, the per-head table and the rollout."""
    lines = [
        "from models import load_model",
        "from analysis.attention import head_pattern, head_statistics, rollout_per_layer, special_tokens_of",
        "",
        *_run_lines(model_expression, text, mask),
        "print(trace.tokens[0])",
        f"weights = head_pattern(trace, layer={layer}, head={head!r})  # (tokens, tokens): rows attend to columns",
        f"print('attention, layer {layer}, head {head}:', weights, sep='\\n')",
        "stats = head_statistics(trace, special_tokens_of(model), causal=model.config.causal)  # one row per head",
        "print(stats)",
        f"rollout = rollout_per_layer(trace.attentions, residual_weight={residual_weight})[{layer}]"
        f"  # Abnar & Zuidema 2020, through layer {layer}",
        f"print('rollout through layer {layer}:', rollout, sep='\\n')",
        "",
        "# bertviz's head view as a file that opens offline:",
        "# from app.bertviz_offline import head_view_html",
        "# open('head_view.html', 'w').write(head_view_html(trace.attentions, trace.tokens[0]))",
    ]
    return "\n".join(lines) + "\n"


def hidden_states_code(model_expression: str, text: object, lens_positions: Sequence[int] | None,
                       lens_top_k: int, cosine_layer: int, cosine_position: int | None,
                       pca_layers: Sequence[int], pca_normalize: bool) -> str:
    """Code for the Hidden states page: logit lens (when there is an LM head), norms, cosines, PCA."""
    lines = [
        "from models import load_model",
        "from analysis.hidden_states import layer_cosine_similarity, pca_projection, residual_norms, token_cosine_similarity",
    ]
    if lens_positions is not None:
        lines.append("from analysis.lens import logit_lens")
    lines += ["", *_run_lines(model_expression, text, None)]
    if lens_positions is not None:
        first, last = lens_positions[0], lens_positions[-1]
        lines += [f"lens = logit_lens(model, trace, positions=range({first}, {last + 1}), top_k={lens_top_k})",
                  "print(lens.top1_table())  # layers x positions: each layer's top token"]
    lines += [
        "norms = residual_norms(trace)  # (layers + 1, tokens): L2 norm of the residual stream",
        "print('residual norms, layers x tokens:', norms, sep='\\n')",
        f"layer_cos = layer_cosine_similarity(trace, position={cosine_position!r})  # (layers + 1, layers + 1)",
        "print('cosine similarity between layers:', layer_cos, sep='\\n')",
        f"token_cos = token_cosine_similarity(trace, layer={cosine_layer})  # (tokens, tokens)",
        f"print('cosine similarity between tokens at layer {cosine_layer}:', token_cos, sep='\\n')",
        f"projection = pca_projection(trace, layers=range({pca_layers[0]}, {pca_layers[-1] + 1}), "
        f"normalize={pca_normalize})",
        "print(projection.frame)  # layer, position, token, pc1, pc2",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Heads
@dataclass(frozen=True)
class EvalSource:
    """Where the page's evaluation sentences come from, as code."""
    labelled_csv: str | None        # e.g. "sample_data/sentiment.csv" for a classifier, else None
    split: str | None               # the labelled set's split used for scoring
    sentences_file: str | None      # e.g. "sample_data/sentences.txt" for language models and entropy
    n_examples: int
    batch_size: int = 16


def _data_lines(source: EvalSource, needs_loss: bool) -> list[str]:
    n = source.n_examples
    if source.labelled_csv:
        return [f"texts, labels = read_labelled_csv({source.labelled_csv!r}, split={source.split!r})",
                f"texts, labels = texts[:{n}], labels[:{n}]",
                f"data = make_eval_set(model, texts, labels, batch_size={source.batch_size})"]
    lines = [f"texts = [line.strip() for line in open({source.sentences_file!r}) if line.strip()][:{n}]"]
    if needs_loss:
        lines.append(f"data = make_eval_set(model, texts, batch_size={source.batch_size})  # the model's own LM loss")
    return lines


def heads_code(model_expression: str, source: EvalSource, method: str, params: dict, needs_loss: bool,
               text: object, mask: dict[int, list[int]], curve: dict | None = None) -> str:
    """Importance scores, the masking effect on one text, and (if shown) the pruning curve."""
    call_params = "".join(f", {k}={v!r}" for k, v in params.items())
    lines = [
        "from models import load_model",
        "from analysis.head_effect import masking_effect",
        "from analysis.head_importance import compute_head_importance",
        "from analysis.metrics import make_eval_set, read_labelled_csv",
    ]
    if curve:
        lines.append("from analysis.pruning_curve import compute_pruning_curve")
    lines += ["", f"model = {model_expression}", *_data_lines(source, needs_loss or bool(curve))]
    target = "data" if needs_loss else "texts"
    lines += [f"importance = compute_head_importance(model, {target}, {method!r}{call_params})",
              "print(importance.table())  # layers x heads, the heatmap",
              "print(importance.to_frame())  # one row per head, ranked: the Scores tab"]
    if mask:
        lines += [f"effect = masking_effect(model, {text!r}, {dict(mask)!r})",
                  "print(effect.prediction)  # top outputs before and after masking",
                  "print(effect.attention_change)  # (layers, heads) mean |change| of each head's attention",
                  f"pruned = {prune_recipe('model', mask)}  # a new model; `model` is unchanged",
                  "print(f'{model.num_parameters() - pruned.num_parameters():,} parameters removed')"]
    if curve:
        if source.labelled_csv:
            lines += [f"test_texts, test_labels = read_labelled_csv({source.labelled_csv!r}, split='test')",
                      f"held_out = make_eval_set(model, test_texts, test_labels, batch_size={source.batch_size})",
                      "curve = compute_pruning_curve(model, held_out, score_data=data"]
        else:
            lines.append("curve = compute_pruning_curve(model, data")
        lines[-1] += (f", method={curve['method']!r}, metric={curve['metric']!r}, "
                      f"step_fraction={curve['step_fraction']!r}, max_fraction={curve['max_fraction']!r})")
        lines.append("print(curve.table)  # one row per step: heads pruned, loss, accuracy, parameters")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Vocabulary and Task heads
def vocabulary_code(model_expression: str, tokens: Sequence[str], special: bool, init: str, seed: int,
                    text: str) -> str:
    return "\n".join([
        "from models import load_model",
        "from analysis.vocabulary import compare_tokenization, nearest_neighbours, prediction_change",
        "",
        f"model = {model_expression}",
        f"grown = {add_tokens_recipe('model', tokens, special, init, seed)}",
        "print(grown.vocabulary_change.summary())",
        f"text = {text!r}",
        "change = compare_tokenization(model, grown, text)",
        "print('before:', change.before)",
        "print('after: ', change.after)",
        "neighbours = nearest_neighbours(grown, grown.vocabulary_change.added, k=5)",
        "print(neighbours)",
        "predictions = prediction_change(model, grown, text)",
        "print(predictions)",
        "grown.save_pretrained('grown-model/')  # transformers' AutoTokenizer and AutoModel load it",
    ]) + "\n"


def task_head_code(model_expression: str, task: str, labels: Sequence[str] | None) -> str:
    return "\n".join([
        "from models import load_model",
        "from models.task_heads import head_is_trained",
        "",
        f"model = {with_head_recipe(model_expression, task, labels)}",
        "print(model.task, model.labels, 'trained' if head_is_trained(model) else 'untrained')",
        "model.save_pretrained('with-head/')  # loads in transformers' AutoModelFor...",
    ]) + "\n"


def training_code(model_expression: str, task: str, data_path: str, trainable: Sequence[str], epochs: int,
                  learning_rate: float, seed: int, validation_from_train: bool) -> str:
    reader = "read_labelled_texts" if task == "sequence-classification" else "read_labelled_tokens"
    split = ("fit, validation = split_off(data.split('train'), 0.15, seed={seed!r})".format(seed=seed)
             if validation_from_train else "fit, validation = data.split('train'), data.split('validation')")
    return "\n".join([
        "from models import load_model",
        f"from models.labelled_data import {reader}, split_off",
        "from models.training import TrainingConfig, evaluate, train",
        "",
        f"data = {reader}({data_path!r})",
        split,
        f"model = {model_expression}.with_head({task!r}, labels=data.label_names)",
        f"config = TrainingConfig(epochs={epochs!r}, learning_rate={learning_rate!r}, trainable={tuple(trainable)!r}, "
        f"seed={seed!r})",
        "result = train(model, fit, validation, config)",
        "print(result.to_frame())",
        "print('held-out accuracy', evaluate(result.model, data.split('test')).accuracy)",
        "result.model.save_pretrained('trained/')",
    ]) + "\n"


# ---------------------------------------------------------------- Attribution
def attribution_code(model_expression: str, modality: str, source: Any, methods: Sequence[str], target: Any,
                     params: dict) -> str:
    """Code for the Attribution page: every method on one text, image or clip, their agreement, the HTML report."""
    variable = {"image": "image", "audio": "clip"}.get(modality, "text")
    function = {"image": "attribute_image", "audio": "attribute_audio"}.get(modality, "attribute_text")
    return "\n".join([
        "from models import load_model",
        "from analysis.attribution import attribute_text, rank_correlation, report_html",
        "from analysis.attribution.audio import attribute_audio",
        "from analysis.attribution.image import attribute_image",
        "",
        f"model = {model_expression}",
        f"{variable} = {source!r}",
        f"report = {function}(model, {variable}, methods={list(methods)!r}, target={target!r}, params={params!r})",
        "for key, result in report.results.items():",
        "    print(key, result.scores)  # one score per token / pixel; IG also has result.convergence_delta",
        "print(rank_correlation(report))  # Spearman, on |scores|",
        "open('attribution.html', 'w').write(report_html(report))",
    ]) + "\n"


# ---------------------------------------------------------------- Interventions
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
    """Code for the Interventions page: patching, steering and the generation stepper, as far as each was shown."""
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
            "# the metric is logit[answer] - logit[wrong] at the last position (or of the classifier)",
            'print(f"Clean run: {result.clean_metric:.4f}; corrupted run: {result.corrupted_metric:.4f}.")',
            f"for site in {list(p.sites)!r}:",
        ]
        if p.exact:
            lines += ['    print(f"exact patching, {site}: the metric of each patched run (layers x positions | heads)")',
                      "    print(result.exact[site].numpy().round(4))",
                      '    print(f"correlation of exact and attribution patching ({site}): {result.correlation(site):.3f}")']
        lines += ['    print(f"attribution patching, {site}: first-order estimate from one forward and one backward pass")',
                  "    print(result.attribution[site].numpy().round(4))",
                  "result.to_frame().to_csv('patching.csv', index=False)  # the page's CSV"]
        if p.cell is not None:
            site, layer, index = p.cell
            lines += [f"run = patched_run(model, clean, corrupted, {site!r}, {p.answer!r}, {p.wrong!r}, "
                      f"layer={layer}, index={index})",
                      "# restored = (patched - corrupted) / (clean - corrupted)",
                      'print(f"Patched run: metric {run.metric:.4f} (clean {run.clean_metric:.4f}, corrupted '
                      '{run.corrupted_metric:.4f}; restored {run.restored:.1%}).")',
                      "print(run.prediction.to_string(index=False))  # clean, corrupted and patched probabilities"]
    if steering:
        s = steering
        lines += ["", "# steering: the difference of mean residual streams entering a block, added as alpha * v"]
        if s.uploaded:
            lines.append(f"vector = load_steering_vector({s.uploaded!r})")
        else:
            lines += [f"vector = steering_vector(model, positive={list(s.positive)!r}, negative={list(s.negative)!r}, "
                      f"layer={s.layer}, reduce={s.reduce!r})",
                      "save_steering_vector(vector, 'steering_vector.safetensors')"]
        lines.append('print(f"norm of v: {vector.norm:.3f} at {vector.hook_name}")')
        if s.generates:
            lines += [f"comparison = compare_steering(model, {s.prompt!r}, vector, alpha={s.alpha!r}, "
                      f"max_new_tokens={s.max_new_tokens})",
                      'print("Plain:", comparison.prompt + comparison.plain_text)',
                      'print("Steered:", comparison.prompt + comparison.steered_text)']
        else:
            lines.append(f"print(steered_prediction(model, {s.prompt!r}, vector, alpha={s.alpha!r})"
                         ".to_string(index=False))  # plain vs steered")
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
        lines += ["print('Decoded:', view.prompt + model.tokenizer.decode(view.new_ids))",
                  "print(view.to_frame().to_string(index=False))  # one row per step: token, probability, decided at",
                  "step = view.steps[-1]",
                  "print(step.top.to_string(index=False))  # top next-token probabilities, the model's and the sampler's",
                  "print(step.attention.numpy().round(3))  # (layers, heads, context): the new position's attention",
                  "print(step.lens_frame().to_string(index=False))  # logit lens at the new position"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Compare
def compare_code(runs: Sequence[tuple[str, str, str]], source_expression: str, reference: str | None = None,
                 repeat_generation: bool = False) -> str:
    """Code for the Compare page: each (entry, task, model expression) run and timed as the page does
    (`analysis.compare_report.run_comparison`), the table, the agreement matrix and, given a reference
    transcript, each transcript's word error rate.

    ``source_expression`` is Python for the input (a text's repr, a file path's repr).
    """
    lines = [
        "from analysis.compare import comparison_table, top_answer",
        "from analysis.compare_report import (comparison_agreement, is_transcript, reference_wer, run_comparison,",
        "                                     with_timings)",
        "from models import load_model, pipeline",
        "",
        f"source = {source_expression}",
        "loaders = {  # 'task · model': what gives its pipeline",
    ]
    for entry, task, expression in runs:
        code, _, note = expression.partition("  # ")
        lines.append(f"    {entry!r}: lambda: pipeline({task!r}, {code}),{'  # ' + note if note else ''}")
    lines += [
        "}",
        "# each model's answer is its first call; a model that does not generate is called again, and the median of",
        "# those calls is its steady-state latency (timings[name].shown says which time the latency is)",
        f"results, timings, errors = run_comparison(loaders, source, repeat_generation={repeat_generation!r})",
        "for name, message in errors.items():",
        "    print(f'{name} failed: {message}')",
        "table = with_timings(comparison_table(results), timings)  # answer, score, load / first call / steady state",
        "print(table[['model', 'answer', 'score', 'load_ms', 'first_call_ms', 'steady_ms', 'latency_ms', 'timing']]"
        ".to_string(index=False))",
        "agreement = comparison_agreement(table)  # 1 - word error rate between answers",
        "print(agreement.round(2))",
    ]
    if reference:
        lines += [f"reference = {reference!r}",
                  "transcripts = {e: top_answer(r) for e, r in results.items() if is_transcript(r)}",
                  "wer = reference_wer(transcripts, reference)  # word edits / reference words, per transcript",
                  "print(wer.to_string(index=False))"]
    return "\n".join(lines) + "\n"


def text_to_text_attention_code(model_expression: str, source: str, layer: int, head: int | str,
                                encoder: tuple[int, int | str] = (0, "mean"),
                                decoder: tuple[int, int | str] = (0, "mean")) -> str:
    """Code for the Attention page on a text encoder-decoder: the output, the alignment, both self-attentions."""
    lines = [
        "from models import load_model",
        "from analysis.alignment import alignment, stack_pattern, strongest_sources, written_tokens",
        "",
        f"model = {model_expression}",
        f"trace = model.run({source!r})  # greedy output, then every pattern of what it wrote",
        "heads = model.stack_head_ids()",
        "print('source:', trace.extras['source_tokens'][0])",
        "print('output:', trace.extras['outputs'][0])",
        f"weights = alignment(trace, layer={layer}, head={head!r}, head_ids=heads['cross'])"
        "  # (written tokens, source tokens)",
        f"print('cross-attention, layer {layer}, head {head}:', weights, sep='\\n')",
        "sources, written = trace.extras['source_tokens'][0], written_tokens(trace)",
        "print([(written[r], sources[c]) for r, c in enumerate(strongest_sources(weights))])",
        f"print(stack_pattern(trace, 'encoder', {encoder[0]}, {encoder[1]!r}, heads['encoder']))  # (source, source)",
        f"print(stack_pattern(trace, 'decoder', {decoder[0]}, {decoder[1]!r}, heads['decoder']))  # (decoder, decoder)",
    ]
    return "\n".join(lines) + "\n"
