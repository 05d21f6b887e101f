"""A Ray address that does not answer gives a clear error within 30 s (Ray alone retries for minutes)."""
from __future__ import annotations

import socket
import time

import pytest

from analysis.sweeps import make_executor, run_sweep, EvaluateSweep, read_dataset, ColumnMap
from models.errors import InputError

pytest.importorskip("ray")


def _closed_port() -> int:
    with socket.socket() as s:  # bind, read the port, close: nothing listens there afterwards
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_that_does_not_answer(small_sentiment, tmp_path):
    import ray
    address = f"127.0.0.1:{_closed_port()}"
    out = tmp_path / "out.parquet"
    out.write_bytes(b"kept")
    start = time.perf_counter()
    with pytest.raises(InputError, match=rf"No Ray cluster answers at {address}.*ray start --head"):
        run_sweep(EvaluateSweep(models=("unused",)), read_dataset(small_sentiment, ColumnMap(text="text", label="label")),
                  executor="ray", address=address, out=out)
    assert time.perf_counter() - start < 30
    assert out.read_bytes() == b"kept" and not ray.is_initialized()


def test_an_address_that_is_not_host_and_port():
    with pytest.raises(InputError, match="is not host:port"):
        make_executor("ray", address="just-a-name")
    with pytest.raises(InputError, match="--address is for the ray executor"):
        make_executor("local", address="127.0.0.1:6379")
    with pytest.raises(InputError, match="Unknown executor 'dask'"):
        make_executor("dask")
