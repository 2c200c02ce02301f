"""Helpers for running the worker as a subprocess and building its inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.events import parse_event

GPU_RUNNER_DIR = Path(__file__).resolve().parents[2]
REPOSITORY_ROOT = GPU_RUNNER_DIR.parent
PREPARED_SMOLLM2 = REPOSITORY_ROOT / ".data" / "models" / "smollm2-135m-instruct"
# Generous limit for one worker process; a tiny-model job takes about 10 s on 2 CPU cores.
WORKER_TIMEOUT_SECONDS = 180


def worker_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "worker", *arguments]


def worker_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


@dataclass
class WorkerRun:
    returncode: int
    events: list[Any]
    stderr: str

    def types(self) -> list[str]:
        return [event.type for event in self.events]

    def of_type(self, event_type: str) -> list[Any]:
        return [event for event in self.events if event.type == event_type]


def parse_stdout(stdout: str) -> list[Any]:
    """Parse every stdout line as an event; a non-event line fails the test."""
    return [parse_event(line) for line in stdout.splitlines()]


def run_worker_job(spec: dict[str, Any], spec_path: Path) -> WorkerRun:
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    completed = subprocess.run(
        worker_command("run", "--spec", str(spec_path)),
        cwd=GPU_RUNNER_DIR,
        env=worker_environment(),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
    )
    return WorkerRun(completed.returncode, parse_stdout(completed.stdout), completed.stderr)


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def training_rows(count: int) -> list[dict[str, Any]]:
    """Return a small data set mixing both line forms, multi-turn conversations included."""
    rows: list[dict[str, Any]] = []
    for index in range(count):
        if index % 2 == 0:
            rows.append({"prompt": f"What is {index} plus {index}?", "completion": f"{index} plus {index} is {2 * index}."})
        else:
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": "Answer with a number."},
                        {"role": "user", "content": f"Double {index}."},
                        {"role": "assistant", "content": str(2 * index)},
                        {"role": "user", "content": "And triple it?"},
                        {"role": "assistant", "content": str(3 * index)},
                    ]
                }
            )
    return rows


def finetune_spec(work_dir: Path, base_path: Path, dataset_path: Path, **overrides: Any) -> dict[str, Any]:
    hyperparameters = {
        "rank": 4,
        "alpha": 8,
        "dropout": 0.05,
        "targetModules": "all-linear",
        "learningRate": 0.01,
        "epochs": 1,
        "maxSteps": 3,
        "batchSize": 2,
        "gradientAccumulation": 2,
        "maxSeqLength": 128,
        "warmupRatio": 0.1,
        "seed": 7,
    }
    hyperparameters.update(overrides)
    return {
        "jobId": "test-finetune",
        "kind": "finetune",
        "workDir": str(work_dir),
        "baseModel": {"id": "tiny-random-llama", "path": str(base_path)},
        "finetune": {
            "datasetPath": str(dataset_path),
            "outputDir": str(work_dir / "adapter"),
            "hyperparameters": hyperparameters,
        },
    }


@dataclass
class TrainedAdapter:
    run: WorkerRun
    work_dir: Path
    adapter_dir: Path
    spec: dict[str, Any]
