"""The sidebar says whether the loaded model is native or opened through the bridge over transformers."""
from __future__ import annotations

import pytest

from tests.app.page_helpers import open_page

transformers = pytest.importorskip("transformers")

from tests.models.decoder_parity import make_decoder_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def bloom_folder(tmp_path_factory):
    """BLOOM has no native family: it opens through the bridge."""
    folder = tmp_path_factory.mktemp("app-bloom")
    make_decoder_checkpoint(transformers.BloomConfig, transformers.BloomForCausalLM, folder,
                            hidden_size=32, n_layer=2, n_head=4)
    return folder


def sidebar_captions(at) -> list[str]:
    return [c.value for c in at.sidebar.caption]


def test_sidebar_shows_bridge_for_a_bridged_folder(tiny_models, bloom_folder):
    at = open_page(query={"model": str(bloom_folder), "text": "the cat sat on the mat"})
    assert not at.exception and not at.error
    assert any(c.startswith("bridge") for c in sidebar_captions(at))
    assert not any(c.startswith("native") for c in sidebar_captions(at))


def test_sidebar_shows_native_for_a_native_model(tiny_models):
    at = open_page()
    assert not at.exception and not at.error
    assert any(c.startswith("native") for c in sidebar_captions(at))
    assert not any(c.startswith("bridge") for c in sidebar_captions(at))


# the pages that open on the sidebar's model (Compare picks its own)
MODEL_PAGES = ("attention.py", "hidden_states.py", "heads.py", "vocabulary.py", "task_heads.py", "attribution.py",
               "interventions.py")


def test_every_model_page_opens_on_a_bridged_model(tiny_models, bloom_folder):
    for page in MODEL_PAGES:
        at = open_page(page, query={"model": str(bloom_folder), "text": "the cat sat on the mat"})
        assert not at.exception, page
        # what a page cannot do on a bridged model it says, naming the native families
        assert all("needs a native family" in e.value for e in at.error), (page, [e.value for e in at.error])
        assert any(c.startswith("bridge") for c in sidebar_captions(at)), page
