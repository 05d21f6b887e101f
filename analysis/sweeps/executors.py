"""Where a sweep's shards run: `local` (in this process, the default) or `ray` (actors on a Ray cluster).

Both run the same `sweep.run_shard(models, shard)` on the same shards, and the runner reduces
the partials in shard order, so they give the same numbers. With Ray, one actor per worker
loads each model once (by name or folder, `models.load_model`) and keeps it; shards stream to
whichever actor is free, two in flight per actor so none waits between shards.

    RayExecutor(workers=4)                          # starts a local Ray instance, stopped on close()
    RayExecutor(workers=16, address="head:6379")    # joins a running cluster (every node needs this package)

An address that does not answer is reported within `connect_timeout` seconds (Ray itself
would keep retrying for minutes).
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from models.errors import InputError, WorkbenchError

from .data import Shard

Loader = Callable[[str], Any]
EXECUTORS = ("local", "ray")
# Ray (2.5x+) sends its token to an address given explicitly only when asked to
TOKEN_HINT = "set RAY_AUTH_MODE=token and give the cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token)."


@dataclass(frozen=True)
class ModelFacts:
    """What the driver needs to know of a model to check inputs and plan a sweep, without holding it."""
    name: str
    task: str | None
    modality: str
    labels: dict[int, str]
    can_generate: bool
    tasks: tuple[str, ...]
    n_layers: int
    n_heads: int
    head_ids: tuple[tuple[int, ...], ...]
    num_parameters: int
    source: str
    n_classes: int | None = None      # classifiers: outputs of the head (labels may name none of them)

    @classmethod
    def of(cls, name: str, model: Any) -> "ModelFacts":
        n_classes = None
        if model.task and model.task.endswith("classification"):
            logits_layer = getattr(model.network.head, "classifier", None)
            n_classes = int(logits_layer.out_features) if hasattr(logits_layer, "out_features") else len(model.labels or {})
        return cls(name=name, task=model.task, modality=model.modality, n_classes=n_classes,
                   labels={int(k): str(v) for k, v in (model.labels or {}).items()},
                   can_generate=bool(model.can_generate), tasks=tuple(model.tasks),
                   n_layers=model.n_layers, n_heads=model.n_heads,
                   head_ids=tuple(tuple(ids) for ids in model.head_ids()), num_parameters=model.num_parameters(),
                   source=str(getattr(model, "source", "")))

    def identity(self) -> dict:
        """What decides this model's numbers, for the key resumed shards are found by."""
        return {"name": self.name, "task": self.task, "labels": self.labels, "head_ids": self.head_ids,
                "num_parameters": self.num_parameters, "source": self.source}


class WorkerModels:
    """The models one worker holds: each loaded once, plus derived copies (pruned) made once and kept."""

    def __init__(self, loader: Loader | None = None, keep_derived: int = 4) -> None:
        self._loader = loader
        self._models: dict[str, Any] = {}
        self._derived: dict[tuple, Any] = {}
        self._keep = keep_derived

    def get(self, name: str) -> Any:
        if name not in self._models:
            if self._loader is not None:
                self._models[name] = self._loader(name)
            else:
                import models  # looked up at call time, so a patched loader (the app's tests) is seen
                self._models[name] = models.load_model(name)
        return self._models[name]

    def derived(self, name: str, key: tuple, make: Callable[[Any], Any]) -> Any:
        """`make(model)` once per (name, key), e.g. a pruned copy for one step of a pruning curve."""
        full = (name, key)
        if full not in self._derived:
            while len(self._derived) >= self._keep:
                self._derived.pop(next(iter(self._derived)))
            self._derived[full] = make(self.get(name))
        return self._derived[full]

    def facts(self, names: Iterable[str]) -> dict[str, ModelFacts]:
        return {name: ModelFacts.of(name, self.get(name)) for name in names}


class LocalExecutor:
    """In this process, one shard after another (each shard batched inside)."""
    name = "local"
    workers = 1

    def __init__(self, loader: Loader | None = None) -> None:
        self.models = WorkerModels(loader)

    def facts(self, names: Iterable[str]) -> dict[str, ModelFacts]:
        return self.models.facts(names)

    def map(self, sweep: Any, shards: list[Shard]) -> Iterator[tuple[int, dict]]:
        for shard in shards:
            yield shard.index, sweep.run_shard(self.models, shard)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _RayWorker:
    """The body of one Ray actor: holds its models for the actor's lifetime."""

    def __init__(self) -> None:
        import os
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.models = WorkerModels()

    def facts(self, names: list[str]) -> dict[str, ModelFacts]:
        return self.models.facts(names)

    def run(self, sweep: Any, shard: Shard) -> tuple[int, dict]:
        return shard.index, sweep.run_shard(self.models, shard)

    def pid(self) -> int:
        import os
        return os.getpid()


def check_address(address: str, timeout: float = 10.0) -> None:
    """Raise a clear InputError unless something listens at a Ray address ("host:port" or "ray://host:port")."""
    if address in ("auto", "local"):
        return
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379 or ray://head:10001).")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except OSError as error:
        raise InputError(f"No Ray cluster answers at {address} ({error.strerror or error}). Start one with "
                         f"`ray start --head --port {port}` on that machine, check the address, or leave out "
                         "--address to run a local Ray instance.") from None


class RayExecutor:
    """One actor per worker on a Ray cluster; shards stream through them."""
    name = "ray"

    def __init__(self, workers: int = 2, address: str | None = None, connect_timeout: float = 20.0,
                 in_flight: int = 2, object_store_mb: int = 256) -> None:
        if workers < 1:
            raise InputError(f"A Ray sweep needs at least one worker; got {workers}.")
        try:
            import ray
        except ImportError:  # pragma: no cover - a declared dependency
            raise InputError("The ray executor needs the `ray` package: pip install ray.") from None
        self._ray = ray
        self.workers = workers
        self.in_flight = max(1, in_flight)
        self._started = False
        self.startup_seconds = 0.0
        start = time.perf_counter()
        if not ray.is_initialized():
            if address:
                check_address(address, timeout=connect_timeout)
                _ray_init(ray, address=address, connect_timeout=connect_timeout)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                         object_store_memory=object_store_mb * 2 ** 20, configure_logging=False)
            self._started = True
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self._actors = [actor.remote() for _ in range(workers)]
        ray.get([a.pid.remote() for a in self._actors])  # every actor is up before timing anything
        self.startup_seconds = time.perf_counter() - start

    def facts(self, names: Iterable[str]) -> dict[str, ModelFacts]:
        names = list(names)
        answers = self._get([a.facts.remote(names) for a in self._actors])  # every actor loads each model once
        return answers[0]

    def map(self, sweep: Any, shards: list[Shard]) -> Iterator[tuple[int, dict]]:
        ray = self._ray
        queue = list(shards)[::-1]
        pending: dict[Any, Any] = {}

        def submit(actor) -> None:
            if queue:
                pending[actor.run.remote(sweep, queue.pop())] = actor

        for _ in range(self.in_flight):
            for actor in self._actors:
                submit(actor)
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                actor = pending.pop(ready[0])
                index, partial = self._get(ready[0])
                submit(actor)
                yield index, partial
        finally:
            for ref in pending:  # an interrupted sweep: drop what is still queued
                try:
                    ray.cancel(ref)
                except Exception:
                    pass

    def pids(self) -> list[int]:
        return self._get([a.pid.remote() for a in self._actors])

    def _get(self, refs):
        try:
            return self._ray.get(refs)
        except self._ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, WorkbenchError):
                raise type(cause)(str(cause)) from None
            raise

    def close(self) -> None:
        for actor in getattr(self, "_actors", []):
            try:
                self._ray.kill(actor)
            except Exception:
                pass
        self._actors = []
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _ray_init(ray, address: str, connect_timeout: float) -> None:
    """ray.init on a thread, so an address that accepts connections but is not Ray cannot hang us."""
    import threading
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            outcome["error"] = None
        except BaseException as error:  # noqa: BLE001 - reported below
            outcome["error"] = error

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(connect_timeout)
    if thread.is_alive():
        raise InputError(f"Something answers at {address}, but no Ray cluster let us in within {connect_timeout:.0f} s. "
                         "Check the port (the head's GCS port, 6379 by default, or ray://host:10001 for Ray Client) "
                         f"and, if the cluster uses token authentication, {TOKEN_HINT}")
    if outcome.get("error") is not None:
        raise InputError(f"Could not join the Ray cluster at {address}: {outcome['error']}. If it uses token "
                         f"authentication, {TOKEN_HINT}") from None


def make_executor(executor: str | Any = "local", workers: int = 2, address: str | None = None,
                  loader: Loader | None = None) -> Any:
    """An executor from its name ("local" or "ray"); an executor object is returned as it is."""
    if not isinstance(executor, str):
        return executor
    if executor == "local":
        if address:
            raise InputError("--address is for the ray executor; add --executor ray.")
        return LocalExecutor(loader)
    if executor == "ray":
        return RayExecutor(workers=workers, address=address)
    raise InputError(f"Unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}.")
