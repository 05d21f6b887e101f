"""Every page's "code to reproduce" runs as a script and prints what the page shows (issue 18, bug 15).

Each page is driven on tiny models until its snippets appear; each snippet is then executed as a
script would run it (its own namespace, stdout captured, in a scratch folder that sees the
repository's sample_data/), with `models.load_model` patched to the same tiny models. A bare
expression on its own line prints nothing in a script, so none may be left.
"""
from __future__ import annotations

import ast
import contextlib
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.app.page_helpers import open_page
from tests.app.test_heads_page import sentiment_classifier  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parents[2]
TEXT = "the cat sat on the mat ."
SIDE_EFFECTS = {"print", "write", "save_pretrained", "to_csv", "save_steering_vector"}  # calls that show or save


def unprinted_expressions(code: str) -> list[str]:
    """Top-level expression statements that a script would evaluate and throw away."""
    lost = []
    for node in ast.parse(code).body:
        if not isinstance(node, ast.Expr):
            continue
        call = node.value
        name = None
        if isinstance(call, ast.Call):
            name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)
        if name not in SIDE_EFFECTS:
            lost.append(ast.unparse(node))
    return lost


def run_as_script(code: str, folder: Path) -> str:
    """Execute ``code`` in a fresh namespace in ``folder`` (which links sample_data/), returning what it printed."""
    link = folder / "sample_data"
    if not link.exists():
        link.symlink_to(ROOT / "sample_data")
    out, here = io.StringIO(), os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, "<snippet>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the page's own code
    finally:
        os.chdir(here)
    return out.getvalue()


def check(snippets: list[str], folder: Path) -> list[str]:
    assert snippets, "the page shows no code"
    printed = []
    for code in snippets:
        assert not unprinted_expressions(code), f"bare expressions print nothing in a script: {unprinted_expressions(code)}"
        output = run_as_script(code, folder)
        assert output.strip(), f"the snippet printed nothing:\n{code}"
        printed.append(output)
    return printed


def test_attention_snippet_prints_tokens_weights_statistics_and_rollout(tiny_models, tmp_path):
    at = open_page()
    at.text_area(key="attention_free").set_value(TEXT).run()
    at.multiselect(key="attention_ablate").select("L0.H1").run()
    out, = check([c.value for c in at.code], tmp_path)
    assert "'[CLS]', 'the', 'cat'" in out and "attention, layer 0, head mean" in out and "rollout through layer 0" in out
    assert "to_previous" in out  # the statistics table


def test_hidden_states_snippet_prints_lens_norms_cosines_and_pca(tiny_models, tmp_path):
    at = open_page("hidden_states.py", query={"model": "smollm2"})
    at.text_area(key="hidden_free").set_value(TEXT).run()
    out, = check([c.value for c in at.code], tmp_path)
    for shown in ("residual norms", "between layers", "between tokens", "pc1"):
        assert shown in out


def test_heads_snippet_prints_scores_effect_and_curve(tiny_models, sentiment_classifier, tmp_path):  # noqa: F811
    at = open_page("heads.py", query={"model": str(sentiment_classifier)})
    at.slider(key="heads_examples").set_value(8).run()
    at.text_area(key="heads_free").set_value(TEXT).run()
    at.multiselect(key="heads_mask").select("L0.H3").run()
    at.slider(key="heads_curve_step").set_value(25).run()
    at.button(key="heads_curve_run").click().run()
    assert not at.exception and not at.error
    out, = check([c.value for c in at.code], tmp_path)
    for shown in ("head 0", "rank", "before", "parameters removed", "heads_pruned"):
        assert shown in out


def test_vocabulary_snippet_prints_the_change(tiny_models, tmp_path):
    at = open_page("vocabulary.py")
    at.text_input(key="vocabulary_tokens").set_value("catnap").run()
    at.text_area(key="vocabulary_text").set_value("the catnap .").run()
    out, = check([c.value for c in at.code], tmp_path)
    assert "before:" in out and "catnap" in out


def test_task_head_and_training_snippets_print(tiny_models, tmp_path):
    at = open_page("task_heads.py")
    at.text_input(key="heads_text").set_value(TEXT).run()
    at.selectbox(key="heads_task").set_value("sequence-classification").run()
    at.selectbox(key="heads_trainable").set_value("head only").run()
    at.number_input(key="heads_epochs").set_value(1).run()
    at.button(key="heads_train").click().run()
    assert not at.exception and not at.error
    head, training = check([c.value for c in at.code], tmp_path)
    assert "sequence-classification" in head and "held-out accuracy" in training


def test_attribution_snippet_prints_scores_and_agreement(tiny_models, tmp_path):
    at = open_page("attribution.py", query={"model": "minilm-sentiment"})
    at.text_area(key="attribution_free").set_value(TEXT).run()
    at.button(key="attribution_run").click().run()
    assert not at.exception and not at.error
    out, = check([c.value for c in at.code], tmp_path)
    assert "integrated_gradients" in out or "saliency" in out


def test_interventions_snippet_prints_the_page_numbers(tiny_models, tmp_path):
    from analysis.patching import SITE_LABELS
    from tests.app.page_helpers import captions, chart_z
    from tests.app.test_interventions_page import chart_with_prefix, set_prompts
    from tests.app.test_long_runs_interventions import steering_inputs

    at = set_prompts(open_page("interventions.py", query={"model": "smollm2"}))
    at.multiselect(key="iv_sites").set_value(["head", "mlp_out"]).run()
    at.button(key="iv_run").click().run()
    at.selectbox(key="iv_cell_layer").set_value(1).run()
    at.selectbox(key="iv_cell_index").set_value(2).run()
    steering_inputs(at).button(key="iv_steer_run").click().run()
    at.text_input(key="iv_gen_prompt").set_value("the cat sat on").run()
    at.button(key="iv_gen_more").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    out, = check([c.value for c in at.code], tmp_path)
    shown = captions(at)
    metrics = next(re.match(r"Clean run: \S+; corrupted run: \S+\.", c) for c in shown if c.startswith("Clean run:"))
    assert metrics.group(0) in out
    for site in ("head", "mlp_out"):
        assert str(chart_z(at, chart_with_prefix(at, f"iv_exact_{site}_")).astype(np.float64).round(4)) in out
        label = re.escape(SITE_LABELS[site])
        page = next(re.search(rf"\({label}\): (\S+) over", c).group(1) for c in shown if "Correlation of exact" in c
                    and re.search(rf"\({label}\)", c))
        assert f"correlation of exact and attribution patching ({site}): {page}" in out
    patched = r"metric \S+ \(clean \S+, corrupted \S+; restored \S+\)"
    page_run = next(re.search(patched, c).group(0) for c in shown if c.startswith("Patched run with the clean"))
    assert re.search(patched, out).group(0) == page_run  # the cell's patched run: layer 1, head 2
    steered = [t.value for t in at.text]  # plain, then steered, each after the prompt
    assert f"Plain: {steered[0]}" in out and f"Steered: {steered[1]}" in out
    decoded = next(c for c in shown if c.startswith("Decoded: "))
    assert decoded in out.splitlines()


@pytest.mark.parametrize("code, lost", [("x = 1\nx\n", ["x"]), ("t.table()\n", ["t.table()"]), ("print(1)\n", []),
                                        ("open('f', 'w').write('x')\n", []), ("a, b\n", ["(a, b)"])])
def test_bare_expressions_are_found(code, lost):
    assert unprinted_expressions(code) == lost
