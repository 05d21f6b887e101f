"""App tests run the real pages with tiny random models in place of the embedded checkpoints."""
from __future__ import annotations

import pytest

import models
from tests.tiny_models import make_checkpoint

# what each embedded name is replaced by in page tests
TINY_KIND = {"minilm": "bert", "sre-minilm": "bert", "smollm2": "llama", "minilm-sentiment": "bert-cls"}


@pytest.fixture(scope="session")
def tiny_model_folders(tmp_path_factory):
    folders = {}
    for kind in sorted(set(TINY_KIND.values())):
        folder = tmp_path_factory.mktemp(f"app-{kind}")
        make_checkpoint(kind, folder)
        folders[kind] = folder
    return folders


@pytest.fixture
def tiny_models(monkeypatch, tiny_model_folders):
    """Patch the loader so every page loads tiny models; clears the shared cache before and after."""
    from app.model_cache import shared_model
    real_load = models.load_model

    def fake_load(name, task=None):
        kind = TINY_KIND.get(str(name))
        if kind is None:
            return real_load(name, task=task)
        model = models.load_folder(tiny_model_folders[kind], name=str(name), task=task)
        return model

    monkeypatch.setattr(models, "load_model", fake_load)
    shared_model.clear()
    yield fake_load
    shared_model.clear()
