"""Failure classification and the stdout discipline of the `run` command."""

from __future__ import annotations

import subprocess

import pytest
import torch

from worker.errors import DataError, JobCancelled, SpecError
from worker.process import classify_failure
from worker.tests.helpers import GPU_RUNNER_DIR, parse_stdout, worker_command, worker_environment

CLASSIFIED_ERRORS = [
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "out_of_memory"),
    (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"), "out_of_memory"),
    (MemoryError(), "out_of_memory"),
    (RuntimeError("CUDA error: device-side assert triggered"), "cuda_error"),
    (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx"), "cuda_error"),
    (torch.AcceleratorError("CUDA error: an illegal memory access was encountered"), "cuda_error"),
    (DataError("data.jsonl line 3: invalid JSON"), "data_error"),
    (JobCancelled("SIGTERM received"), "cancelled"),
    (SpecError("invalid job spec"), "crash"),
    (ValueError("something else"), "crash"),
    (KeyError("x"), "crash"),
]


@pytest.mark.parametrize(("error", "reason"), CLASSIFIED_ERRORS, ids=[f"{type(e).__name__}-{r}" for e, r in CLASSIFIED_ERRORS])
def test_classify_failure(error: BaseException, reason: str) -> None:
    classified_reason, message = classify_failure(error)
    assert classified_reason == reason
    assert message


def test_crash_message_names_exception() -> None:
    _, message = classify_failure(KeyError("adapter"))
    assert message == "KeyError: 'adapter'"


def test_long_message_truncated() -> None:
    _, message = classify_failure(ValueError("x" * 10_000))
    assert len(message) <= 4000
    assert message.endswith("...")


def test_missing_spec_file_prints_failed_event(tmp_path) -> None:
    completed = subprocess.run(
        worker_command("run", "--spec", str(tmp_path / "absent.json")),
        cwd=GPU_RUNNER_DIR, env=worker_environment(), capture_output=True, text=True, timeout=120,
    )

    assert completed.returncode == 1
    events = parse_stdout(completed.stdout)
    assert [event.type for event in events] == ["started", "failed"]
    assert events[-1].reason == "crash"
    assert "absent.json" in events[-1].message


def test_usage_error_prints_failed_event() -> None:
    completed = subprocess.run(
        worker_command("run"), cwd=GPU_RUNNER_DIR, env=worker_environment(), capture_output=True, text=True, timeout=60,
    )

    assert completed.returncode == 2
    [event] = parse_stdout(completed.stdout)
    assert event.type == "failed"
    assert "--spec" in event.message
