"""Start-up warm-up: load the embedded default models, and what their first page imports, in the background.

A server's first page loads MiniLM, and a switch to SmolLM2 reads its cached conversion from disk
(seconds); the first bertviz view imports IPython (bertviz needs it), and a model's first forward pass
is slower than the next. A daemon thread, started once the first page has its own model (app.page_setup), waits for that script run
to end and then does all of this, so it never slows the first page's run; the models it loads go into the
same per-process cache the pages read (``app.model_cache.preload``), which takes only that model's lock.
It runs niced: on two cores a warm-up at normal priority slowed the next clicks on the first page
(1.8 s -> 2-5 s for a new sentence). The cost: a page that asks for a model while it is being warmed
waits on its lock for the niced loader. Measured: the switch to SmolLM2 20 s after the first page
took 3.3 s warmed and 7.2 s without the warm-up (load average 5-6).

Only a real server warms up (``streamlit run``): AppTests and notebooks have no Streamlit runtime,
and their patched loaders must not meet real models. ``WORKBENCH_WARM_MODELS`` names the models
(by default the first page's model and the first embedded causal LM; empty turns the warm-up off).
"""
from __future__ import annotations

import os
import threading



def default_names() -> list[str]:
    """The model the first page opens on (the first embedded text model) and the first embedded causal LM."""
    from models.embedded import EMBEDDED_MODELS, embedded_names_for
    first = embedded_names_for("text")[:1]
    generating = [r.name for r in EMBEDDED_MODELS.values() if r.task == "causal-lm"][:1]
    return first + [n for n in generating if n not in first]
_started = threading.Event()


def _lower_priority() -> None:
    """Linux schedules threads as tasks: a niced warm-up thread yields the CPU to page runs."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass


def _warm(names: list[str], first_run: threading.Thread) -> None:
    _lower_priority()
    first_run.join()  # the script run that started us: its page first
    import bertviz  # noqa: F401  (imports IPython: a second or more on a busy machine, once per process)

    from .model_cache import preload
    for name in names:
        try:
            model = preload(name)
            if model is not None:
                model.run("Warm up the first forward pass.")
        except Exception:  # a model that cannot load says so when a page asks for it
            continue


def start_warm_up() -> None:
    """Once per process, in a real server: warm the models named by ``WORKBENCH_WARM_MODELS`` in a daemon thread."""
    from streamlit import runtime

    if _started.is_set() or not runtime.exists():
        return
    _started.set()
    given = os.environ.get("WORKBENCH_WARM_MODELS")
    names = default_names() if given is None else [n.strip() for n in given.split(",") if n.strip()]
    if names:
        threading.Thread(target=_warm, args=(names, threading.current_thread()), name="workbench-warm-up",
                         daemon=True).start()
