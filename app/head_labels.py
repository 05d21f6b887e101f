"""Heads named as "L{layer}.H{head}" in widgets, and back to a {layer: [heads]} selection."""
from __future__ import annotations


def head_label(layer: int, head: int) -> str:
    return f"L{layer}.H{head}"


def parse_heads(labels: list[str]) -> dict[int, list[int]]:
    """["L1.H2", "L1.H0"] -> {1: [0, 2]}, layers and heads sorted."""
    spec: dict[int, list[int]] = {}
    for label in labels:
        layer, head = label[1:].split(".H")
        spec.setdefault(int(layer), []).append(int(head))
    return {layer: sorted(heads) for layer, heads in sorted(spec.items())}


def pruned_label(name: str, spec: dict[int, list[int]]) -> str:
    """"minilm − 2 heads": what a pruned copy of ``name`` is called."""
    count = sum(len(heads) for heads in spec.values())
    return f"{name} − {count} head{'s' if count != 1 else ''}"


def head_list_label(text: str) -> str:
    """"0.10, 0.1" (layer.head, as analysis tables write heads) -> "L0.H10, L0.H1": read as numbers, the first
    two look like the same head."""
    parts = [part.strip() for part in str(text).split(",") if part.strip()]
    return ", ".join(head_label(*(int(n) for n in part.split("."))) for part in parts)
