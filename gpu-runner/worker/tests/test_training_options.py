"""Training options on the tiny model: rsLoRA, DoRA, AdaLoRA, schedules, packing, validation, hardware errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from worker.errors import SpecError
from worker.finetune import TrainingState, record_validation_loss
from worker.spec import Hyperparameters
from worker.tests.helpers import WorkerRun, finetune_spec, run_worker_job, training_rows, write_jsonl


def run_options(tiny_base: Path, tmp_path: Path, rows: int = 8, **overrides: Any) -> WorkerRun:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(rows))
    spec = finetune_spec(tmp_path, tiny_base, dataset, **overrides)
    return run_worker_job(spec, tmp_path / "spec.json")


def adapter_config(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))


def test_rslora_and_dora_reach_adapter_config(tiny_base: Path, tmp_path: Path) -> None:
    run = run_options(tiny_base, tmp_path, useRslora=True, useDora=True, targetModules=["q_proj", "v_proj", "down_proj"])

    assert run.returncode == 0, run.stderr
    config = adapter_config(tmp_path)
    assert config["use_rslora"] is True
    assert config["use_dora"] is True
    assert sorted(config["target_modules"]) == ["down_proj", "q_proj", "v_proj"]


def test_all_linear_never_targets_lm_head(tiny_base: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run = run_options(tiny_base, tmp_path)

    assert run.returncode == 0, run.stderr
    names = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors")).keys()
    modules = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in names}
    assert modules == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_lm_head_target_rejected(tiny_base: Path, tmp_path: Path) -> None:
    run = run_options(tiny_base, tmp_path, targetModules=["q_proj", "lm_head"])

    assert run.returncode == 1
    assert "output layer 'lm_head'" in run.events[-1].message


def test_adalora_trains_and_saves(tiny_base: Path, tmp_path: Path) -> None:
    adalora = {"initialRank": 6, "targetRank": 2, "tinit": 1, "tfinal": 1, "deltaT": 1}
    run = run_options(tiny_base, tmp_path, rows=16, adalora=adalora, maxSteps=None, epochs=2)

    assert run.returncode == 0, run.stderr
    config = adapter_config(tmp_path)
    assert config["peft_type"] == "ADALORA"
    assert config["init_r"] == 6
    assert config["target_r"] == 2
    assert config["total_step"] == run.of_type("finished")[0].summary.steps
    assert "lm_head" not in config["target_modules"]


def test_adalora_schedule_longer_than_run_rejected(tiny_base: Path, tmp_path: Path) -> None:
    adalora = {"initialRank": 6, "targetRank": 2, "tinit": 2, "tfinal": 1, "deltaT": 1}
    run = run_options(tiny_base, tmp_path, adalora=adalora)

    assert run.returncode == 1
    message = run.events[-1].message
    assert "adalora.tinit (2) + adalora.tfinal (1)" in message
    # 8 examples in batches of 2 with accumulation 2: 2 steps.
    assert "2 optimizer steps" in message


@pytest.mark.parametrize("scheduler", ["constant", "cosine"])
def test_learning_rate_schedulers(tiny_base: Path, tmp_path: Path, scheduler: str) -> None:
    run = run_options(tiny_base, tmp_path, rows=16, lrScheduler=scheduler, maxSteps=None, warmupRatio=0.25, learningRate=0.01)

    assert run.returncode == 0, run.stderr
    rates = [event.learningRate for event in run.of_type("progress")]
    assert len(rates) == 4
    # One warmup step (ceil(0.25 × 4)) starts at 0.
    assert rates[0] == 0.0
    if scheduler == "constant":
        assert rates[1:] == [0.01, 0.01, 0.01]
    else:
        # Cosine from the peak after warmup: 0.01 × (1 + cos(pi × k / 3)) / 2 for k = 0, 1, 2.
        for step, rate in enumerate(rates[1:]):
            assert rate == pytest.approx(0.01 * (1 + math.cos(math.pi * step / 3)) / 2)


def test_packing_trains_on_every_example(tiny_base: Path, tmp_path: Path) -> None:
    run = run_options(tiny_base, tmp_path, rows=12, packing=True, maxSteps=None, batchSize=1, gradientAccumulation=1)

    assert run.returncode == 0, run.stderr
    [summary] = [event.summary for event in run.of_type("finished")]
    assert summary.examples == 12
    # Twelve short examples fit in fewer 128-token rows, one row per step.
    assert summary.steps < 12
    assert any("rows (packed, each micro-batch flattened into one unpadded row)" in event.message for event in run.of_type("log"))


def test_validation_loss_and_checkpoints(tiny_base: Path, tmp_path: Path) -> None:
    run = run_options(
        tiny_base, tmp_path, rows=20, validationFraction=0.2, evalEverySteps=2, checkpointEverySteps=2,
        maxSteps=None, epochs=2, gradientAccumulation=1,
    )

    assert run.returncode == 0, run.stderr
    [summary] = [event.summary for event in run.of_type("finished")]
    assert summary.examples == 16
    assert summary.validationExamples == 4
    losses = [event.value for event in run.of_type("metric") if event.name == "validationLoss"]
    assert len(losses) == summary.steps // 2
    assert summary.validationLoss == losses[-1]
    checkpoints = [event.step for event in run.of_type("checkpoint")]
    assert checkpoints == list(range(2, summary.steps, 2))


def test_early_stopping_stops_before_the_end(tiny_base: Path, tmp_path: Path) -> None:
    # A learning rate far too high makes the validation loss rise after the first evaluation.
    run = run_options(
        tiny_base, tmp_path, rows=20, validationFraction=0.2, evalEverySteps=1, earlyStoppingPatience=2,
        maxSteps=None, epochs=3, gradientAccumulation=1, learningRate=0.3, lrScheduler="constant", warmupRatio=0,
    )

    assert run.returncode == 0, run.stderr
    [summary] = [event.summary for event in run.of_type("finished")]
    total = run.of_type("progress")[0].totalSteps
    assert summary.stoppedEarly is True
    assert summary.steps < total
    assert any("earlyStoppingPatience=2" in event.message for event in run.of_type("log"))


def test_record_validation_loss_counts_patience() -> None:
    state = TrainingState()
    for loss in [2.0, 1.5, 1.5, 1.7, 1.4, 1.6]:
        record_validation_loss(state, loss)

    assert state.best_validation_loss == 1.4
    assert state.evaluations_without_improvement == 1
    assert state.validation_losses == [2.0, 1.5, 1.5, 1.7, 1.4, 1.6]


def test_truncation_counts_reported(tiny_base: Path, tmp_path: Path) -> None:
    rows = training_rows(4) + [
        {"prompt": "Context: " + "many words " * 80, "completion": "short"},
        {"prompt": "Q?", "completion": "long answer " * 80},
    ]
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    spec = finetune_spec(tmp_path, tiny_base, dataset, maxSeqLength=64, maxSteps=None)

    run = run_worker_job(spec, tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    [summary] = [event.summary for event in run.of_type("finished")]
    assert summary.truncatedExamples == 1
    assert summary.droppedExamples == 1
    assert summary.examples == 5
    [warning] = [event for event in run.of_type("log") if "maxSeqLength=64" in event.message]
    assert warning.level == "warning"
    assert "1 examples (lines [5])" in warning.message
    assert "skipped 1" in warning.message


def test_4bit_on_cpu_fails_naming_requirements(tiny_base: Path, tmp_path: Path) -> None:
    run = run_options(tiny_base, tmp_path, quantization="4bit")

    assert run.returncode == 1
    assert run.types() == ["started", "failed"]
    failed = run.events[-1]
    assert failed.reason == "cuda_error"
    assert "a CUDA GPU (this worker runs on cpu)" in failed.message
    assert "bitsandbytes" in failed.message
    assert 'set quantization to "none"' in failed.message


def test_bf16_on_cpu_fails_naming_requirements(tiny_base: Path, tmp_path: Path) -> None:
    run = run_options(tiny_base, tmp_path, precision="bf16")

    assert run.returncode == 1
    failed = run.events[-1]
    assert failed.reason == "cuda_error"
    assert "bfloat16 support" in failed.message
    assert 'set precision to "auto" or "fp32"' in failed.message


def test_spec_rejects_conflicting_options() -> None:
    base = {
        "rank": 4, "alpha": 8, "dropout": 0.0, "targetModules": "all-linear", "learningRate": 0.01, "epochs": 1,
        "maxSteps": None, "batchSize": 1, "gradientAccumulation": 1, "maxSeqLength": 64, "warmupRatio": 0, "seed": 1,
    }
    adalora = {"initialRank": 8, "targetRank": 4, "tinit": 0, "tfinal": 0, "deltaT": 1}
    with pytest.raises(ValueError, match="AdaLoRA has no DoRA"):
        Hyperparameters.model_validate({**base, "adalora": adalora, "useDora": True})
    with pytest.raises(ValueError, match="set validationFraction above 0 and evalEverySteps"):
        Hyperparameters.model_validate({**base, "earlyStoppingPatience": 1})
    with pytest.raises(ValueError, match="set targetRank at most initialRank"):
        Hyperparameters.model_validate({**base, "adalora": {**adalora, "targetRank": 9}})
    assert Hyperparameters.model_validate(base).packing is False
    assert SpecError.reason == "crash"
