"""Helpers for AppTest page tests: open a page of the app, read numbers back out of plotly charts."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

import models

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app" / "main.py")


def open_page(page_file: str | None = None, query: dict[str, str] | None = None, timeout: float = 90) -> AppTest:
    """Run the app; if ``page_file`` (e.g. "hidden_states.py") is given, switch to that page and run again."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    if page_file is not None:
        at.switch_page("../pages/" + page_file).run()
    return at


def pruned_copies(*names: str) -> dict:
    """Session-owned models as the Heads page makes them, by display name: each model with head 0 of layer 0 pruned.

    Put them in ``at.session_state["session_models"]`` and rerun: the app then treats them as this session's own.
    """
    return {f"{name} − 1 head": models.load_model(name).prune_heads({0: [0]}) for name in names}


def decode(value):
    """plotly >= 6 writes numpy arrays as {"dtype", "bdata", "shape"}; turn those back into arrays."""
    if isinstance(value, dict) and "bdata" in value:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            array = array.reshape([int(s) for s in str(shape).split(",")] if isinstance(shape, str) else shape)
        return array
    return np.asarray(value)


def chart_traces(at: AppTest, key: str) -> list[dict]:
    """The traces of the plotly chart with this widget key, as dicts."""
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if chart.proto.id and key in chart.proto.id:
            return spec["data"]
    raise KeyError(f"no plotly chart with key {key!r}")


def chart_z(at: AppTest, key: str, trace: int = 0) -> np.ndarray:
    return decode(chart_traces(at, key)[trace]["z"]).astype(float)


def iframe_html(at: AppTest) -> str:
    frames = at.get("iframe")
    assert frames, "no iframe on the page"
    return frames[0].proto.srcdoc


def browser_shows(widget) -> str:
    """What the browser draws for a widget that was not on the page in the run before, as text.

    The browser draws such a widget from its message alone: the value the server sends
    (``set_value``), or else the widget's default.
    """
    proto, kind = widget.proto, type(widget).__name__
    if kind in ("TextArea", "TextInput"):
        return proto.value if proto.set_value else proto.default
    if kind in ("Selectbox", "Radio"):
        return proto.raw_value if proto.set_value else proto.options[proto.default]
    if kind == "Multiselect":
        return list(proto.raw_values) if proto.set_value else [proto.options[i] for i in proto.default]
    if kind == "Slider":
        return ", ".join(f"{v:g}" for v in (proto.value if proto.set_value else proto.default))
    raise TypeError(kind)


def captions(at: AppTest) -> list[str]:
    return [c.value for c in at.caption]


def shown_text(markdown: str) -> str:
    """What the browser shows of a Markdown body the app escaped (app/markdown_text.py): the backslashes go."""
    import re
    return re.sub(r"\\(.)", r"\1", markdown)
