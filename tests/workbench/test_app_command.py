"""`workbench app` starts the Streamlit app from any folder, passes streamlit options through, and
`workbench --help` lists its commands."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.app.streamlit_server import free_port
from workbench.app_command import ROOT, app_command

WORKBENCH = Path(sys.executable).parent / "workbench"


def test_help_lists_app_and_sweep():
    done = subprocess.run([str(WORKBENCH), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    commands = done.stdout.split("positional arguments:")[1]
    assert "app " in commands and "sweep " in commands


def test_the_command_runs_this_projects_entry_point_with_the_extra_options():
    command = app_command(["--server.port", "8600"])
    assert command[1:4] == ["-m", "streamlit", "run"]
    assert Path(command[4]) == ROOT / "app" / "main.py" and Path(command[4]).is_file()
    assert command[5:] == ["--server.port", "8600"]


def test_other_commands_still_reject_unknown_options(tmp_path):
    done = subprocess.run([str(WORKBENCH), "sweep", "evaluate", "--models", "m", "--data", "d.csv", "--out", "o",
                           "--server.port", "1"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "unrecognized arguments: --server.port 1" in done.stderr


def test_workbench_app_serves_the_health_endpoint(tmp_path):
    port = free_port()
    log = tmp_path / "app.log"
    # no start-up warm-up (app/warm_up.py): the test only needs the server, not the real models
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WORKBENCH_WARM_MODELS": ""}
    with log.open("w") as handle:  # started from another folder: the command finds the project itself
        process = subprocess.Popen([str(WORKBENCH), "app", "--server.port", str(port), "--server.headless", "true"],
                                   cwd=tmp_path, env=env, stdout=handle, stderr=subprocess.STDOUT)
    try:
        deadline, status = time.monotonic() + 120, None
        while status != 200:
            assert process.poll() is None, f"workbench app exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer on port {port}:\n{log.read_text()}"
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2) as response:
                    status, body = response.status, response.read()
            except OSError:
                time.sleep(0.3)
        assert body == b"ok"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # exec replaced the command with the server, so stopping it left nothing listening
    try:
        urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2)
        answered = True
    except OSError:
        answered = False
    assert not answered
