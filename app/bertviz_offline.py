"""bertviz's head view and model view as self-contained HTML that draws with no network.

bertviz (Vig, "A Multiscale Visualization of Attention in the Transformer Model", ACL 2019
demo track) emits, with ``html_action='return'``:

1. a ``<script src=...>`` loading require.js from a public content-delivery host;
2. a ``<div id="bertviz-<uuid>">`` for the view;
3. its ``head_view.js`` / ``model_view.js`` in a ``<script>``, which starts with
   ``require.config({paths: {d3: <remote url>, jquery: <remote url>}})`` and
   then ``requirejs(['jquery', 'd3'], ...)``, with ``PYTHON_PARAMS`` replaced by
   ``json.dumps(params)`` (the attention as nested lists from ``tensor.tolist()``).

Offline, all three downloads fail and nothing is drawn. This module keeps part 2 and
bertviz's own code from part 3, drops the CDN ``<script src>`` and the ``require.config``
paths, and instead inlines the libraries vendored in ``app/vendor/`` (see its README):
jQuery and d3 as plain scripts first (no AMD loader present yet, so they set
``window.jQuery`` and ``window.d3``), then require.js, then ``define('jquery', ...)`` and
``define('d3', ...)`` returning those globals, so bertviz's ``requirejs([...])`` resolves
without loading anything.

It never imports streamlit: pages hand the string to ``st.components.v1.html``, and a
notebook or a test can write it to a file.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"

# Order matters: jQuery and d3 must run before require.js defines `define`, otherwise
# their UMD wrappers register anonymous AMD modules instead of setting globals.
_VENDOR_SCRIPTS = ("jquery.min.js", "d3.min.js", "require.js")

_AMD_SHIM = """
define('jquery', [], function () { return window.jQuery; });
define('d3', [], function () { return window.d3; });
"""

# bertviz's model view draws a fixed 970 px wide SVG; beside Streamlit's sidebar at 1,280 px the frame is about
# 820 px, and the last heads fell outside it with no scrollbar. This gives every SVG bertviz (re)draws a viewBox
# of its own size and lets it shrink to the frame's width, keeping its proportions (it never grows).
_FIT_TO_WIDTH = """
(function () {
  function fit() {
    document.querySelectorAll('#vis svg').forEach(function (svg) {
      var w = parseFloat(svg.getAttribute('width')), h = parseFloat(svg.getAttribute('height'));
      if (!w || !h) { return; }
      svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
      svg.setAttribute('preserveAspectRatio', 'xMinYMin meet');
      svg.style.width = '100%'; svg.style.maxWidth = w + 'px'; svg.style.height = 'auto';
    });
  }
  new MutationObserver(fit).observe(document.body, {childList: true, subtree: true, attributes: true,
                                                    attributeFilter: ['width', 'height']});
  fit();
})();
"""

_CDN_SCRIPT_TAG = re.compile(r"<script[^>]*\bsrc\s*=\s*[\"'][^\"']*[\"'][^>]*>\s*</script>", re.IGNORECASE)
_REQUIRE_CONFIG = re.compile(r"require\.config\(\s*\{.*?\}\s*\)\s*;", re.DOTALL)
_PARAMS_MARKER = "const params = "
# An integral float ("0.0", "1.0") in a purely numeric JSON array; JavaScript reads "0" the same.
_INTEGRAL_FLOAT = re.compile(r"(?<![\d.])(\d+)\.0(?![\d.eE])")

AttentionInput = Sequence[torch.Tensor | np.ndarray]


@functools.lru_cache(maxsize=None)
def _vendor_script(name: str) -> str:
    """The vendored file's text, safe to put inside an inline ``<script>``."""
    text = (VENDOR_DIR / name).read_text(encoding="utf-8")
    return text.replace("</script", "<\\/script")


def _vendor_head() -> str:
    scripts = [f'<script type="text/javascript">\n{_vendor_script(name)}\n</script>' for name in _VENDOR_SCRIPTS]
    scripts.append(f'<script type="text/javascript">{_AMD_SHIM}</script>')
    return "\n".join(scripts)


def _prepare_attention(
    attention: AttentionInput | None, include_layers: Sequence[int] | None, decimals: int | None
) -> list[torch.Tensor] | None:
    """Per-layer tensors [1, heads, seq, seq] on the CPU, rounded to ``decimals``.

    Rounding happens in float64 on purpose: ``torch.round(x, decimals=3)`` of a float32
    tensor still holds float32 values, and ``tolist()`` widens 0.123f to 0.12300000339746475.
    In float64, round(x * 1000) / 1000 is the double nearest 0.123, which ``json.dumps``
    (shortest round-trip repr) prints as ``0.123``. Only layers that will be shown are
    converted; the others are passed through untouched (bertviz drops them).
    """
    if attention is None:
        return None
    layers = []
    for index, layer_attention in enumerate(attention):
        tensor = torch.as_tensor(layer_attention).detach().cpu()
        if tensor.dim() == 3:  # [heads, seq, seq] without the batch axis
            tensor = tensor.unsqueeze(0)
        if tensor.dim() != 4 or tensor.shape[0] != 1:
            raise ValueError(
                f"layer {index}: expected attention of shape [1, heads, seq, seq] (batch of one), "
                f"got {tuple(tensor.shape)}; select one example, e.g. [a[i:i+1] for a in attentions]"
            )
        if decimals is not None and (include_layers is None or index in include_layers):
            tensor = torch.round(tensor.to(torch.float64), decimals=decimals)
        layers.append(tensor)
    return layers


def _number_table(decimals: int) -> list[str]:
    """Every k / 10**decimals in [0, 1] as json.dumps writes the rounded float64, integral ones as integers."""
    if decimals not in _NUMBER_TABLES:
        _NUMBER_TABLES[decimals] = [_INTEGRAL_FLOAT.sub(r"\1", json.dumps(round(k / 10 ** decimals, decimals)))
                                    for k in range(10 ** decimals + 1)]
    return _NUMBER_TABLES[decimals]


_NUMBER_TABLES: dict[int, list[str]] = {}


def _fast_literal(layers: Sequence[torch.Tensor], decimals: int) -> str | None:
    """The compact JSON of rounded per-layer (heads, queries, keys) tensors, from a lookup table.

    json.dumps of nested float lists was most of a head view's build (0.5 s of 0.7 s at 64 tokens x 6 layers).
    None when a value is not in [0, 1] at ``decimals`` (then json.dumps writes them).
    """
    table, top = _number_table(decimals), 10 ** decimals
    parts = []
    for values in layers:  # (H, a, b)
        scaled = np.rint(values.numpy() * top)
        if scaled.size and not (0 <= scaled.min() and scaled.max() <= top):  # also False for NaN
            return None
        heads = []
        for head in scaled.astype(np.int64).tolist():
            heads.append("[" + ",".join("[" + ",".join(map(table.__getitem__, row)) + "]" for row in head) + "]")
        parts.append("[" + ",".join(heads) + "]")
    return "[" + ",".join(parts) + "]"


def _compact_params(script: str, numbers: dict | None = None) -> str:
    """Re-serialise bertviz's params literal compactly and safely for inline HTML.

    bertviz writes ``json.dumps(params)``: a space after every comma and colon, and
    ``0.0``/``1.0`` for integral values. The attention arrays are re-dumped with no spaces
    and integral floats as integers (one to three bytes saved per number; a third or more
    of a rounded payload), and the second copy bertviz leaves in a comment is dropped.
    ``</`` is escaped as ``<\\/`` so a token such as ``</script>`` cannot close the script
    element early. The decoded values are unchanged.
    """
    start = script.index(_PARAMS_MARKER) + len(_PARAMS_MARKER)
    params, end = json.JSONDecoder().raw_decode(script, start)
    placeholders = {}
    for entry in params["attention"]:
        key = f"__bertviz_offline_attn_{uuid.uuid4().hex}__"
        if numbers is not None:  # bertviz was given empty matrices; the literal comes from the real ones
            placeholders[json.dumps(key)] = numbers[entry["name"]]
        else:
            placeholders[json.dumps(key)] = _INTEGRAL_FLOAT.sub(r"\1", json.dumps(entry["attn"], separators=(",", ":")))
        entry["attn"] = key
    literal = json.dumps(params, separators=(",", ":"), ensure_ascii=False)
    for key, numbers in placeholders.items():
        literal = literal.replace(key, numbers, 1)
    literal = literal.replace("</", "<\\/")
    # bertviz's str.replace("PYTHON_PARAMS", ...) also fills the marker named in the comment
    # that follows (`const params = PYTHON_PARAMS; // HACK: PYTHON_PARAMS is a template
    # marker ...`), so its page carries the whole attention twice. Drop that comment copy.
    line_end = script.find("\n", end)
    line_end = len(script) if line_end < 0 else line_end
    rest_of_line = script[end:line_end]
    if rest_of_line.lstrip().startswith(";"):
        rest_of_line = ";"
    return script[:start] + literal + rest_of_line + script[line_end:]


def _offline_document(bertviz_html: str, title: str, fit_width: bool = False, numbers: dict | None = None) -> str:
    """Turn bertviz's returned fragment into a standalone document with inlined libraries.

    ``fit_width``: scale the drawing down to the frame's width (``_FIT_TO_WIDTH``) instead of cutting it off.
    """
    body = _CDN_SCRIPT_TAG.sub("", bertviz_html)
    marker = _PARAMS_MARKER
    split = body.index(marker)  # config block comes before the params literal
    body = _REQUIRE_CONFIG.sub("", body[:split], count=1) + body[split:]
    body = _compact_params(body, numbers)
    if fit_width:
        body += f'\n<script type="text/javascript">{_FIT_TO_WIDTH}</script>'
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{title}</title>\n{_vendor_head()}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _entry_numbers(attention, encoder_attention, decoder_attention, cross_attention, include_layers,
                   include_heads, sentence_b_start, decimals) -> dict | None:
    """The attention literal of every entry bertviz's params hold, by its name, as bertviz slices them; or None."""
    if decimals is None or decimals > 4:
        return None

    def stacked(layers):  # as bertviz's format_attention, one (H, a, b) tensor per included layer
        chosen = [layers[i] for i in include_layers] if include_layers else list(layers)
        heads = list(include_heads) if include_heads else slice(None)
        return [t[0][heads] for t in chosen]

    entries = {}
    if attention is not None:
        full = stacked(attention)
        entries["All" if sentence_b_start is not None else None] = full
        if sentence_b_start is not None:
            a, b = slice(0, sentence_b_start), slice(sentence_b_start, full[0].shape[-1])
            for name, rows, columns in (("Sentence A -> Sentence A", a, a), ("Sentence B -> Sentence B", b, b),
                                        ("Sentence A -> Sentence B", a, b), ("Sentence B -> Sentence A", b, a)):
                entries[name] = [t[:, rows, columns] for t in full]
    for name, layers in (("Encoder", encoder_attention), ("Decoder", decoder_attention), ("Cross", cross_attention)):
        if layers is not None:
            entries[name] = stacked(layers)
    literals = {name: _fast_literal(values, decimals) for name, values in entries.items()}
    return None if any(v is None for v in literals.values()) else literals


def _placeholders(layers, keep_heads: bool):
    """Zeros of each layer's shape, as bytes and without memory of their own: bertviz checks the shapes and
    builds its params from them (fast: small integers), and the real numbers are written in afterwards.
    The head view reads its heads from the numbers (one placeholder head will do); the model view counts them."""
    if layers is None:
        return None
    return [torch.zeros((), dtype=torch.uint8).expand(1, t.shape[1] if keep_heads else 1, *t.shape[2:]) for t in layers]


def head_view_html(
    attention: AttentionInput | None = None,
    tokens: Sequence[str] | None = None,
    *,
    sentence_b_start: int | None = None,
    prettify_tokens: bool = True,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    include_layers: Sequence[int] | None = None,
    decimals: int | None = 3,
    encoder_attention: AttentionInput | None = None,
    decoder_attention: AttentionInput | None = None,
    cross_attention: AttentionInput | None = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
) -> str:
    """bertviz's head view as a self-contained HTML document that renders offline.

    Args:
        attention: per-layer tensors [1, n_heads, seq, seq] (transformers' ``attentions``);
            [n_heads, seq, seq] is accepted too.
        tokens: one string per position.
        sentence_b_start: index of the first token of sentence B, for a sentence pair.
        prettify_tokens: strip BPE markers (``Ġ``, ``▁``, ``</w>``).
        layer: layer selected at first (must be in ``include_layers``).
        heads: heads selected at first (default all).
        include_layers: layers to ship and offer (default all). Fewer layers, smaller page.
        decimals: digits kept after the point (default 3, a 0.0005 step that is invisible as
            line opacity). ``None`` keeps bertviz's full float32 values.
        encoder_attention, decoder_attention, cross_attention, encoder_tokens,
        decoder_tokens: the encoder-decoder form, as in bertviz.

    Returns:
        An HTML document (str) with jQuery, d3 and require.js inlined and no remote URL.

    Why the values are rounded before bertviz sees them rather than in its output: bertviz
    serialises ``tensor.tolist()`` with ``json.dumps``, so float32 values print with ~17
    digits (``0.12300000339746475``). Handing bertviz float64 tensors already rounded to
    ``decimals`` makes those reprs short (``0.123``) with no text surgery on numbers;
    the JSON is then only re-spaced (see ``_compact_params``).
    """
    from bertviz import head_view

    prepared = [_prepare_attention(a, include_layers, decimals)
                for a in (attention, encoder_attention, decoder_attention, cross_attention)]
    numbers = _entry_numbers(*prepared, include_layers, None, sentence_b_start, decimals)
    if numbers is not None:
        prepared = [_placeholders(a, keep_heads=False) for a in prepared]
    html = head_view(
        attention=prepared[0],
        tokens=list(tokens) if tokens is not None else None,
        sentence_b_start=sentence_b_start,
        prettify_tokens=prettify_tokens,
        layer=layer,
        heads=list(heads) if heads is not None else None,
        encoder_attention=prepared[1],
        decoder_attention=prepared[2],
        cross_attention=prepared[3],
        encoder_tokens=list(encoder_tokens) if encoder_tokens is not None else None,
        decoder_tokens=list(decoder_tokens) if decoder_tokens is not None else None,
        include_layers=list(include_layers) if include_layers is not None else None,
        html_action="return",
    )
    return _offline_document(html.data, "Head view", numbers=numbers)


def model_view_html(
    attention: AttentionInput | None = None,
    tokens: Sequence[str] | None = None,
    *,
    sentence_b_start: int | None = None,
    prettify_tokens: bool = True,
    display_mode: str = "dark",
    include_layers: Sequence[int] | None = None,
    include_heads: Sequence[int] | None = None,
    decimals: int | None = 3,
    fit_width: bool = True,
    encoder_attention: AttentionInput | None = None,
    decoder_attention: AttentionInput | None = None,
    cross_attention: AttentionInput | None = None,
    encoder_tokens: Sequence[str] | None = None,
    decoder_tokens: Sequence[str] | None = None,
) -> str:
    """bertviz's model view (a grid of layers x heads) as self-contained offline HTML.

    Arguments as in :func:`head_view_html`, plus ``display_mode`` (``"dark"`` or
    ``"light"``) and ``include_heads`` (heads to ship, default all). The model view draws
    every included layer and head at once, so ``include_layers``/``include_heads`` matter
    more here for long inputs. Rounding is done the same way, for the same reason.
    ``fit_width`` (default True) scales the 970 px drawing down to a narrower frame, so every
    head stays in view (a page then lets the frame size itself to its content).
    """
    from bertviz import model_view

    prepared = [_prepare_attention(a, include_layers, decimals)
                for a in (attention, encoder_attention, decoder_attention, cross_attention)]
    numbers = _entry_numbers(*prepared, include_layers, include_heads, sentence_b_start, decimals)
    if numbers is not None:
        prepared = [_placeholders(a, keep_heads=True) for a in prepared]
    html = model_view(
        attention=prepared[0],
        tokens=list(tokens) if tokens is not None else None,
        sentence_b_start=sentence_b_start,
        prettify_tokens=prettify_tokens,
        display_mode=display_mode,
        encoder_attention=prepared[1],
        decoder_attention=prepared[2],
        cross_attention=prepared[3],
        encoder_tokens=list(encoder_tokens) if encoder_tokens is not None else None,
        decoder_tokens=list(decoder_tokens) if decoder_tokens is not None else None,
        include_layers=list(include_layers) if include_layers is not None else None,
        include_heads=list(include_heads) if include_heads is not None else None,
        html_action="return",
    )
    return _offline_document(html.data, "Model view", fit_width=fit_width, numbers=numbers)


def payload_size_bytes(html: str) -> int:
    """Size of the HTML as UTF-8 bytes: what the browser (or Streamlit's iframe) receives."""
    return len(html.encode("utf-8"))


__all__ = ["head_view_html", "model_view_html", "payload_size_bytes", "VENDOR_DIR"]
