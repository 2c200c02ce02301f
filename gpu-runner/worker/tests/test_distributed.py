"""Data-parallel training under torchrun on the CPU (gloo): the same adapter as one process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from worker.distributed import ProcessGroup
from worker.tests.helpers import (
    GPU_RUNNER_DIR,
    WORKER_TIMEOUT_SECONDS,
    finetune_spec,
    parse_stdout,
    run_worker_job,
    training_rows,
    worker_environment,
    write_jsonl,
)


def torchrun(spec: dict, spec_path: Path, processes: int) -> subprocess.CompletedProcess[str]:
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "worker", "run", "--spec", str(spec_path)]
    return subprocess.run(command, cwd=GPU_RUNNER_DIR, env=worker_environment(), capture_output=True, text=True, timeout=WORKER_TIMEOUT_SECONDS)


def test_share_splits_items_once() -> None:
    items = list(range(7))
    shares = [ProcessGroup(rank, 3).share(items) for rank in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert ProcessGroup(0, 1).share(items) == items


@pytest.mark.parametrize("batch_size,accumulation", [(2, 2), (3, 1)])
def test_two_processes_match_one(tiny_base: Path, tmp_path: Path, batch_size: int, accumulation: int) -> None:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(12))
    # Dropout draws different masks per process, so it is off for an exact comparison.
    overrides = {"dropout": 0.0, "maxSteps": 3, "batchSize": batch_size, "gradientAccumulation": accumulation}
    single_dir, parallel_dir = tmp_path / "single", tmp_path / "parallel"
    single_dir.mkdir()
    parallel_dir.mkdir()
    single = run_worker_job(finetune_spec(single_dir, tiny_base, dataset, **overrides), single_dir / "spec.json")
    assert single.returncode == 0, single.stderr

    completed = torchrun(finetune_spec(parallel_dir, tiny_base, dataset, **overrides), parallel_dir / "spec.json", 2)
    assert completed.returncode == 0, completed.stderr[-3000:]
    events = parse_stdout(completed.stdout)
    # Only rank 0 reports: one `started`, one `finished`, one progress event per step.
    assert [event.type for event in events].count("started") == 1
    assert [event.type for event in events].count("finished") == 1
    parallel_progress = [event for event in events if event.type == "progress"]
    single_progress = single.of_type("progress")
    assert [event.step for event in parallel_progress] == [1, 2, 3]
    for mine, theirs in zip(parallel_progress, single_progress):
        assert mine.loss == pytest.approx(theirs.loss, rel=1e-4)
    summary = events[-1].summary
    assert summary.processes == 2
    assert summary.trainTokens == single.of_type("finished")[0].summary.trainTokens

    one = load_file(single_dir / "adapter" / "adapter_model.safetensors")
    two = load_file(parallel_dir / "adapter" / "adapter_model.safetensors")
    assert one.keys() == two.keys()
    for name, tensor in one.items():
        assert two[name].allclose(tensor, rtol=1e-4, atol=1e-6), name
