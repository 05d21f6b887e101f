"""Presenter mode's figure styling: projector-sized labels and high-contrast colours, the same numbers."""
from __future__ import annotations

import numpy as np

from app.plots import attention_heatmap, matrix_heatmap
from app.presenter import HIGH_CONTRAST, TICK_PX, style_figure


def test_labels_grow_colours_swap_and_numbers_stay():
    weights = np.random.default_rng(0).dirichlet(np.ones(5), size=5)
    fig = attention_heatmap(weights, list("abcde"), title="a title")
    styled = style_figure(fig)
    assert TICK_PX >= 18
    assert styled.layout.xaxis.tickfont.size == TICK_PX and styled.layout.yaxis.tickfont.size == TICK_PX
    assert styled.layout.title.font.size > 20 and styled.data[0].colorbar.tickfont.size == TICK_PX
    assert styled.data[0].colorscale != fig.data[0].colorscale  # "Blues" -> the high-contrast scale
    np.testing.assert_array_equal(styled.data[0].z, fig.data[0].z)
    assert fig.layout.xaxis.tickfont.size is None  # the page's own figure is not changed


def test_a_diverging_scale_is_kept():
    fig = matrix_heatmap(np.eye(3), list("abc"), list("abc"), colorscale="RdBu", zmin=-1, zmax=1)
    assert style_figure(fig).data[0].colorscale == fig.data[0].colorscale
    assert HIGH_CONTRAST not in str(style_figure(fig).data[0].colorscale)
