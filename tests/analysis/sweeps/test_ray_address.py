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


HEAD = """
import sys, ray
context = ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
print(context.address_info["gcs_address"], flush=True)
sys.stdin.read()  # runs until the test closes our stdin
ray.shutdown()
"""


def test_address_joins_a_running_cluster(sweep_models, small_sentiment, tmp_path):
    """A Ray head in another process (as `ray start --head` would be); the command line joins it by address."""
    import os
    import subprocess
    import sys

    import pandas as pd

    from analysis.sweeps import read_result
    from workbench.cli import main

    args = ["sweep", "evaluate", "--models", sweep_models["classifier"], "--data", str(small_sentiment),
            "--shard-size", "20", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "local.parquet")]) == 0
    head = subprocess.Popen([sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        address = head.stdout.readline().strip()
        assert ":" in address, address
        env = {**os.environ, "RAY_AUTH_MODE": "token"}  # the head uses Ray's token; a client sends it only when told
        done = subprocess.run([sys.executable, "-m", "workbench", *args, "--executor", "ray", "--address", address,
                               "--workers", "1", "--out", str(tmp_path / "joined.parquet")],
                              capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        head.stdin.close()
        head.wait(timeout=120)
    joined = read_result(tmp_path / "joined.parquet")
    assert joined.meta["executor"] == "ray"
    for section, frame in read_result(tmp_path / "local.parquet").sections.items():
        pd.testing.assert_frame_equal(frame, joined[section], check_exact=True)
