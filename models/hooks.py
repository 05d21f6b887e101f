"""Named hook points, in the manner of TransformerLens, scoped to a context so nothing stays attached.

A `HookPoint` is an identity module placed on every activation worth reading or editing.
Hooks are not registered on the modules: `attach_hooks(...)` puts them in a context variable
that only the current thread (one Streamlit session, one notebook cell) sees, so a model shared
by many sessions is never mutated, and on exit, normal or not, the hooks are gone.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import torch
from torch import nn

from .errors import InputError

# fn(activation, hook_name) -> replacement tensor, or None to keep the activation unchanged
HookFn = Callable[[torch.Tensor, str], "torch.Tensor | None"]

# id(HookPoint) -> hook functions active in this thread's context
_ACTIVE_HOOKS: contextvars.ContextVar[dict[int, tuple[HookFn, ...]]] = contextvars.ContextVar(
    "workbench_active_hooks", default={}
)


class HookPoint(nn.Module):
    """Identity module marking an activation; `shape` documents it, e.g. "(B, T, H, dh)"."""

    def __init__(self, shape: str = "") -> None:
        super().__init__()
        self.shape = shape
        self.name = ""  # the module path, filled in by `name_hook_points`

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = _ACTIVE_HOOKS.get()
        if active:
            for fn in active.get(id(self), ()):
                replaced = fn(x, self.name)
                if replaced is not None:
                    x = replaced
        return x

    # Called straight, without nn.Module's call machinery (its forward hooks, tracing checks): a model has
    # a dozen hook points per layer, and that machinery alone cost ~5% of a decoding step. Hooks attach
    # through `attach_hooks`, never `register_forward_hook`.
    __call__ = forward

    def extra_repr(self) -> str:
        return self.shape


def name_hook_points(root: nn.Module) -> dict[str, HookPoint]:
    """Give every HookPoint its module path as its name and return them by name."""
    points: dict[str, HookPoint] = {}
    for name, module in root.named_modules():
        if isinstance(module, HookPoint):
            module.name = name
            points[name] = module
    return points


def is_hooked(point: HookPoint) -> bool:
    """True if a hook is attached to `point` in this thread's context."""
    return bool(_ACTIVE_HOOKS.get().get(id(point)))


def active_hook_count() -> int:
    """Hooks active in this thread's context (0 outside every `attach_hooks`)."""
    return sum(len(fns) for fns in _ACTIVE_HOOKS.get().values())


@contextlib.contextmanager
def attach_hooks(
    points: dict[str, HookPoint], hooks: dict[str, HookFn] | list[tuple[str, HookFn]]
) -> Iterator[None]:
    """Activate hooks by hook-point name (a trailing `*` matches a prefix) for the `with` body."""
    pairs = list(hooks.items()) if isinstance(hooks, dict) else list(hooks)
    merged = {key: tuple(fns) for key, fns in _ACTIVE_HOOKS.get().items()}
    for pattern, fn in pairs:
        for point in _match(points, pattern):
            merged[id(point)] = merged.get(id(point), ()) + (fn,)
    token = _ACTIVE_HOOKS.set(merged)
    try:
        yield
    finally:
        _ACTIVE_HOOKS.reset(token)


def _match(points: dict[str, HookPoint], pattern: str) -> list[HookPoint]:
    if pattern.endswith("*"):
        found = [p for n, p in points.items() if n.startswith(pattern[:-1])]
    else:
        found = [points[pattern]] if pattern in points else []
    if not found:
        sample = ", ".join(list(points)[:6])
        raise InputError(f"No hook point matches {pattern!r}. Hook points look like: {sample}, ...")
    return found
