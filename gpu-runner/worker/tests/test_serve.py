"""The fork server: forked children run jobs exactly like spawned `run` processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from worker.events import parse_event
from worker.tests.helpers import (
    GPU_RUNNER_DIR,
    WORKER_TIMEOUT_SECONDS,
    TrainedAdapter,
    finetune_spec,
    training_rows,
    worker_command,
    worker_environment,
    write_jsonl,
)


class ForkServer:
    """Drives `python -m worker serve` the way the runner does, over its line protocol."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            worker_command("serve"),
            cwd=GPU_RUNNER_DIR,
            env=worker_environment(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        ready = self.message()
        assert ready["ready"] is True
        assert ready["importSeconds"] > 0

    def message(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        assert line, "the fork server closed its stdout"
        return json.loads(line)

    def start(self, job_id: str, spec: dict[str, Any], directory: Path) -> "ForkedJob":
        spec_path = directory / f"{job_id}.json"
        spec_path.write_text(json.dumps(spec), encoding="utf-8")
        job = ForkedJob(directory / f"{job_id}-events.sock", directory / f"{job_id}-logs.sock")
        request = {"id": job_id, "spec": str(spec_path), "events": str(job.events_path), "logs": str(job.logs_path)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        forked = self.message()
        assert forked["id"] == job_id
        assert forked["pid"] > 0
        job.pid = forked["pid"]
        return job

    def close(self) -> int:
        self.process.stdin.close()
        return self.process.wait(timeout=30)


class ForkedJob:
    """Listens on the two sockets a forked child connects to and collects what arrives."""

    def __init__(self, events_path: Path, logs_path: Path) -> None:
        self.events_path, self.logs_path = events_path, logs_path
        self.pid = 0
        self.output: dict[str, bytearray] = {"events": bytearray(), "logs": bytearray()}
        self.threads = [self._listen("events", events_path), self._listen("logs", logs_path)]

    def _listen(self, name: str, path: Path) -> threading.Thread:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(str(path))
        server.listen(1)
        server.settimeout(WORKER_TIMEOUT_SECONDS)

        def receive() -> None:
            connection, _ = server.accept()
            while chunk := connection.recv(65536):
                self.output[name] += chunk
            connection.close()
            server.close()

        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        return thread

    def finish(self) -> tuple[list[Any], str]:
        for thread in self.threads:
            thread.join(WORKER_TIMEOUT_SECONDS)
        events = [parse_event(line) for line in self.output["events"].decode().splitlines()]
        return events, self.output["logs"].decode()


@pytest.fixture
def server() -> ForkServer:
    started = ForkServer()
    yield started
    if started.process.poll() is None:
        started.close()


def test_forked_finetune_matches_spawn(server: ForkServer, trained_adapter: TrainedAdapter, tiny_base: Path, tmp_path: Path) -> None:
    # The same spec as the session's spawned run, so the adapters must be identical.
    spec = dict(trained_adapter.spec)
    spec["finetune"] = dict(spec["finetune"], outputDir=str(tmp_path / "adapter"))
    job = server.start("same", spec, tmp_path)
    events, _ = job.finish()
    exit_message = server.message()
    assert exit_message == {"id": "same", "pid": job.pid, "code": 0, "signal": None}
    assert [event.type for event in events][0] == "started" and events[-1].type == "finished"
    forked = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    spawned = load_file(trained_adapter.adapter_dir / "adapter_model.safetensors")
    assert forked.keys() == spawned.keys()
    for name, tensor in spawned.items():
        assert forked[name].equal(tensor), name


def test_bad_spec_keeps_server_alive(server: ForkServer, tmp_path: Path) -> None:
    first = server.start("bad", {"kind": "nonsense"}, tmp_path)
    events, logs = first.finish()
    assert server.message() == {"id": "bad", "pid": first.pid, "code": 1, "signal": None}
    assert events[-1].type == "failed"
    assert events[-1].reason == "crash"
    assert "invalid job spec" in logs
    # A second request still forks: the failure stayed in the child.
    second = server.start("bad-again", {"kind": "nonsense"}, tmp_path)
    second.finish()
    assert server.message()["code"] == 1


def test_sigterm_stops_forked_child(server: ForkServer, tiny_base: Path, tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(40))
    spec = finetune_spec(tmp_path, tiny_base, dataset, maxSteps=100000, epochs=50)
    job = server.start("long", spec, tmp_path)
    deadline = time.monotonic() + WORKER_TIMEOUT_SECONDS
    while b'"type":"progress"' not in job.output["events"]:
        assert time.monotonic() < deadline, "no progress event from the forked job"
        time.sleep(0.1)
    os.kill(job.pid, signal.SIGTERM)
    events, _ = job.finish()
    assert server.message() == {"id": "long", "pid": job.pid, "code": 143, "signal": None}
    assert events[-1].type == "failed"
    assert events[-1].reason == "cancelled"


def test_children_die_with_server(server: ForkServer, tiny_base: Path, tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(40))
    spec = finetune_spec(tmp_path, tiny_base, dataset, maxSteps=100000, epochs=50)
    job = server.start("orphan", spec, tmp_path)
    time.sleep(1)
    # Closing stdin is how the server learns that its runner is gone.
    assert server.close() == 0
    job.finish()
    with pytest.raises(ProcessLookupError):
        os.kill(job.pid, 0)
