"""A light head view of our own for long inputs: bertviz's picture, the top-k keys of each query only.

bertviz's head view draws one SVG line per (head, query, key): 12 heads at 512 tokens are
3.1 million lines, and its page embeds every layer's full matrices as JSON (1.7 GB for SmolLM2
at 512 tokens). Most of a softmax row's mass sits on a few keys, so this view ships and draws
only each query's ``top_k`` strongest keys of one layer (weights as integers in thousandths,
like bertviz-offline's 3 decimals) and says how much mass it leaves out. Same gestures as
bertviz: coloured boxes toggle heads (double-click: only this head), hovering a token shows
only its lines. d3 is the copy vendored in ``app/vendor`` and inlined: nothing is fetched.

Never imports streamlit: the page hands the string to ``st.iframe``.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import torch

from analysis.attention import top_k_attention

from .bertviz_offline import _vendor_script

_TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Sparse head view</title>
<script type="text/javascript">
__D3__
</script>
<style>
 body { font-family: "Source Sans Pro", sans-serif; margin: 4px; color: #222; background: #fff; }
 #legend { font-size: 12px; color: #555; margin: 2px 0 6px 0; }
 text { font-size: 13px; cursor: default; user-select: none; }
</style></head>
<body>
<div id="legend"></div>
<div id="vis"></div>
<script type="text/javascript">
(function () {
  const params = __PARAMS__;
  const TEXT_TOP = 34, ROW = params.tokens.length > 64 ? 16 : 22, BOXWIDTH = 120, GAP = 130, BOX = 18;
  const n = params.tokens.length, H = params.heads.length, K = params.k;
  const color = i => H <= 10 ? d3.schemeCategory10[i] : d3.interpolateSinebow(i / H);
  const visible = params.heads.map((h, i) => params.selected.indexOf(h) >= 0);
  const active = () => Math.max(1, visible.filter(Boolean).length);
  document.getElementById("legend").textContent =
    `Layer ${params.layer} · top ${K} keys per query · ${n} tokens · ` +
    `${H} heads (click a box to toggle a head, double-click for only that head; hover a token)`;
  const svg = d3.select("#vis").append("svg")
      .attr("width", 2 * BOXWIDTH + GAP + 10).attr("height", TEXT_TOP + n * ROW + 10);
  // one record per kept (head, query, key)
  const links = [];
  params.keys.forEach((keys, h) => {
    for (let q = 0; q < n; q++) for (let r = 0; r < K; r++) {
      const key = keys[q * K + r];
      if (key >= 0) links.push({h: h, q: q, k: key, w: params.weights[h][q * K + r] / 1000});
    }
  });
  const lines = svg.append("g").attr("id", "attention").selectAll("line").data(links).enter().append("line")
      .attr("x1", BOXWIDTH).attr("x2", BOXWIDTH + GAP)
      .attr("y1", d => TEXT_TOP + d.q * ROW + ROW / 2).attr("y2", d => TEXT_TOP + d.k * ROW + ROW / 2)
      .attr("stroke", d => color(d.h)).attr("stroke-width", 2);
  function refresh(focus) {
    // like bertviz, weight / active heads when all lines show; a hovered token's own lines at full weight
    lines.attr("stroke-opacity", d => (visible[d.h] ? (focus === null ? d.w / active() : d.w) : 0))
         .attr("visibility", d => {
           if (focus === null) return null;
           return (focus.left ? d.q === focus.i : d.k === focus.i) ? null : "hidden";
         });
  }
  function column(x, anchor, left) {
    const g = svg.append("g").attr("class", left ? "left" : "right");
    const rows = g.selectAll("g").data(params.tokens).enter().append("g");
    rows.append("rect").attr("class", "bg").attr("x", x).attr("y", (d, i) => TEXT_TOP + i * ROW)
        .attr("width", BOXWIDTH).attr("height", ROW).attr("fill", "lightgray").style("opacity", 0);
    rows.append("text").text(d => d).attr("x", left ? x + BOXWIDTH - 6 : x + 6)
        .attr("y", (d, i) => TEXT_TOP + i * ROW + ROW * 0.72).style("text-anchor", anchor);
    rows.on("mouseover", function (d, i) {
      g.selectAll(".bg").style("opacity", (e, j) => (j === i ? 1 : 0));
      refresh({i: i, left: left});
    });
    g.on("mouseleave", function () { g.selectAll(".bg").style("opacity", 0); refresh(null); });
  }
  column(0, "end", true);
  column(BOXWIDTH + GAP, "start", false);
  const boxes = svg.append("g").attr("id", "heads").selectAll("rect").data(params.heads).enter().append("rect")
      .attr("x", (d, i) => i * (BOX + 2)).attr("y", 0).attr("width", BOX).attr("height", BOX)
      .style("cursor", "pointer");
  boxes.append("title").text(d => `head ${d}`);
  function paintBoxes() { boxes.attr("fill", (d, i) => color(i)).style("opacity", (d, i) => (visible[i] ? 1 : 0.25)); }
  boxes.on("click", function (d, i) {
    if (visible[i] && active() === 1) return;
    visible[i] = !visible[i]; paintBoxes(); refresh(null);
  });
  boxes.on("dblclick", function (d, i) {
    const only = visible[i] && visible.filter(Boolean).length === 1;
    visible.forEach((v, j) => { visible[j] = only ? true : j === i; }); paintBoxes(); refresh(null);
  });
  paintBoxes();
  refresh(null);
})();
</script>
</body></html>
"""


def sparse_head_view_html(pattern: torch.Tensor, tokens: Sequence[str], head_ids: Sequence[int], layer: int,
                          top_k: int = 5, min_weight: float = 0.005,
                          selected_heads: Sequence[int] | None = None) -> str:
    """Self-contained HTML drawing the ``top_k`` strongest keys of every query, per head, of one layer.

    Args:
        pattern: (H, n, n) attention of one layer (rows are queries and sum to 1).
        tokens: n token strings.
        head_ids: original head numbers of the H rows (pruned models keep their names).
        layer: shown in the legend.
        top_k: keys kept per query and head.
        min_weight: kept keys lighter than this are dropped too (invisible as line opacity anyway).
        selected_heads: heads drawn at first (default all).
    """
    pattern = pattern[None] if pattern.dim() == 2 else pattern  # (H, n, n)
    if pattern.shape[0] != len(head_ids) or pattern.shape[-1] != len(tokens):
        raise ValueError(f"pattern {tuple(pattern.shape)} does not fit {len(head_ids)} heads and {len(tokens)} tokens")
    sparse = top_k_attention(pattern, top_k)
    k = sparse.keys.shape[-1]
    thousandths = torch.round(sparse.weights * 1000).to(torch.long)  # (H, n, k)
    keys = torch.where(sparse.weights >= min_weight, sparse.keys, torch.full_like(sparse.keys, -1))  # (H, n, k)
    params = {
        "tokens": [str(t) for t in tokens], "heads": [int(h) for h in head_ids], "layer": int(layer), "k": k,
        "selected": [int(h) for h in (selected_heads if selected_heads is not None else head_ids)],
        "keys": keys.reshape(len(head_ids), -1).tolist(), "weights": thousandths.reshape(len(head_ids), -1).tolist(),
    }
    literal = json.dumps(params, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    return _TEMPLATE.replace("__D3__", _vendor_script("d3.min.js")).replace("__PARAMS__", literal)


__all__ = ["sparse_head_view_html"]
