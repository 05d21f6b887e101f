"""Start-up warm-up (issue 18): models loaded in the background are the ones pages get, and tests never warm up."""
from __future__ import annotations

import threading

from app import model_cache, warm_up


def test_a_preloaded_model_is_the_one_the_pages_get(tiny_models, monkeypatch):
    monkeypatch.setattr(model_cache, "_LOADED", set())
    monkeypatch.setattr(model_cache, "_PRELOADED", {})
    warmed = model_cache.preload("minilm")
    assert model_cache.shared_model("minilm") is warmed  # not loaded a second time
    assert model_cache.preload("minilm") is None  # a page holds it now: nothing left to warm


def test_no_warm_up_without_a_server(monkeypatch):
    """AppTests and notebooks have no Streamlit runtime; their patched loaders must not meet real models."""
    monkeypatch.setattr(warm_up, "_started", threading.Event())
    warm_up.start_warm_up()
    assert not warm_up._started.is_set()
    assert not [t for t in threading.enumerate() if t.name == "workbench-warm-up"]
