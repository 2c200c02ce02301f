"""The finetune job end to end on the tiny model: events, saved adapter, failures, SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from worker.finetune import TrainingPlan, masked_token_loss_sum
from worker.tests.helpers import (
    GPU_RUNNER_DIR,
    TrainedAdapter,
    WORKER_TIMEOUT_SECONDS,
    finetune_spec,
    parse_stdout,
    run_worker_job,
    training_rows,
    worker_command,
    worker_environment,
    write_jsonl,
)


def test_finetune_events_in_order(trained_adapter: TrainedAdapter) -> None:
    run = trained_adapter.run
    assert run.returncode == 0, run.stderr

    types = [event_type for event_type in run.types() if event_type != "log"]
    assert types == ["started", "progress", "progress", "progress", "artifact", "finished"]
    progress = run.of_type("progress")
    assert [event.step for event in progress] == [1, 2, 3]
    assert all(event.totalSteps == 3 for event in progress)
    assert all(event.tokensPerSecond > 0 for event in progress)
    assert progress[-1].etaSeconds == 0
    assert all(event.etaSeconds is not None and event.etaSeconds >= 0 for event in progress)
    assert all(event.cpuMemoryBytes is not None and event.cpuMemoryBytes > 0 for event in progress)
    assert all(event.gpuMemoryBytes is None for event in progress)
    times = [event.time for event in run.events]
    assert times == sorted(times)


def test_finetune_started_reports_cpu(trained_adapter: TrainedAdapter) -> None:
    [started] = trained_adapter.run.of_type("started")
    assert started.device == "cpu"
    assert started.dtype == "float32"
    assert started.versions.torch == torch.__version__


def test_finetune_learning_rate_schedule(trained_adapter: TrainedAdapter) -> None:
    # warmupRatio 0.1 of 3 steps rounds up to 1 warmup step (learning rate 0), then
    # the rate decays linearly from 0.01 to 0 at step 3.
    rates = [event.learningRate for event in trained_adapter.run.of_type("progress")]
    assert rates == pytest.approx([0.0, 0.01, 0.005])


def test_finetune_summary_consistent(trained_adapter: TrainedAdapter) -> None:
    run = trained_adapter.run
    [finished] = run.of_type("finished")
    summary = finished.summary
    progress = run.of_type("progress")

    assert summary.steps == 3
    assert summary.examples == 12
    assert summary.finalLoss == progress[-1].loss
    assert summary.trainLoss == pytest.approx(sum(event.loss for event in progress) / 3)
    # 12 examples in batches of 2 with 2 accumulated batches make 3 steps per epoch.
    assert summary.epochs == pytest.approx(1.0)
    assert 0 < summary.trainableParameters < summary.totalParameters
    assert summary.trainTokens > 0
    assert summary.peakMemoryBytes > 10 * 2**20


def test_finetune_adapter_files(trained_adapter: TrainedAdapter) -> None:
    [artifact] = trained_adapter.run.of_type("artifact")
    assert artifact.role == "adapter"
    assert Path(artifact.path) == trained_adapter.adapter_dir.resolve()
    names = {path.name for path in trained_adapter.adapter_dir.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= names
    assert not any(name.endswith(".bin") for name in names)

    config = json.loads((trained_adapter.adapter_dir / "adapter_config.json").read_text())
    assert config["r"] == 4
    assert config["base_model_name_or_path"] == "tiny-random-llama"


def test_finetune_lora_b_nonzero(trained_adapter: TrainedAdapter) -> None:
    tensors = load_file(str(trained_adapter.adapter_dir / "adapter_model.safetensors"))
    lora_b = {name: tensor for name, tensor in tensors.items() if "lora_B" in name}
    # all-linear on 2 layers: q, k, v, o, gate, up, down in each.
    assert len(lora_b) == 14
    zero = [name for name, tensor in lora_b.items() if not torch.any(tensor != 0)]
    assert zero == []


def test_finetune_adapter_loads_with_peft(trained_adapter: TrainedAdapter, tiny_base: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(tiny_base), local_files_only=True)
    input_ids = torch.tensor([[1, 100, 200, 300]])
    with torch.no_grad():
        base_logits = base(input_ids=input_ids).logits
    model = PeftModel.from_pretrained(base, str(trained_adapter.adapter_dir))
    model.eval()
    with torch.no_grad():
        adapted_logits = model(input_ids=input_ids).logits

    assert not torch.allclose(base_logits, adapted_logits)


def test_finetune_model_card(trained_adapter: TrainedAdapter) -> None:
    text = (trained_adapter.adapter_dir / "README.md").read_text()
    front_matter = text.split("---")[1]
    assert 'base_model: "tiny-random-llama"' in front_matter
    assert "library_name: peft" in front_matter
    assert "tags:" in front_matter
    assert "| learningRate | 0.01 |" in text
    assert "| rank | 4 |" in text


def test_training_plan_caps_steps() -> None:
    plan = TrainingPlan(examples=10, batch_size=4, gradient_accumulation=2, epochs=3, max_steps=None)
    assert plan.steps_per_epoch == 2
    assert plan.total_steps == 6

    capped = TrainingPlan(examples=10, batch_size=4, gradient_accumulation=2, epochs=3, max_steps=3)
    assert capped.total_steps == 3
    assert capped.epochs_to_run == 2

    # maxSteps above the epochs' step count does not extend training.
    uncapped = TrainingPlan(examples=10, batch_size=4, gradient_accumulation=2, epochs=1, max_steps=50)
    assert uncapped.total_steps == 2


def test_masked_loss_ignores_unlabelled_positions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 4, 10)
    labels = torch.tensor([[-100, -100, 3, 7]])

    loss = masked_token_loss_sum(logits, labels)

    # Position 1 predicts label 3 and position 2 predicts label 7.
    log_probs = logits.log_softmax(-1)
    expected = -(log_probs[0, 1, 3] + log_probs[0, 2, 7])
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)


def test_malformed_line_fails_with_data_error(tiny_base: Path, tmp_path: Path) -> None:
    rows = training_rows(4)
    dataset = tmp_path / "data.jsonl"
    lines = [json.dumps(row) for row in rows]
    lines.insert(2, '{"prompt": "no completion here"}')
    dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")

    run = run_worker_job(finetune_spec(tmp_path, tiny_base, dataset), tmp_path / "spec.json")

    assert run.returncode == 1
    assert run.types()[0] == "started"
    failed = run.events[-1]
    assert failed.type == "failed"
    assert failed.reason == "data_error"
    assert "line 3" in failed.message
    assert run.of_type("progress") == []


def test_invalid_spec_fails_with_crash(tiny_base: Path, tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(2))
    spec = finetune_spec(tmp_path, tiny_base, dataset, learningrate=0.1)

    run = run_worker_job(spec, tmp_path / "spec.json")

    assert run.returncode == 1
    failed = run.events[-1]
    assert failed.type == "failed"
    assert failed.reason == "crash"
    assert "learningrate" in failed.message


def test_sigterm_saves_checkpoint_and_exits_143(tiny_base: Path, tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(8))
    # 1000 epochs of 2 steps: far more than the test waits for.
    spec = finetune_spec(tmp_path, tiny_base, dataset, maxSteps=None, epochs=1000, batchSize=4, gradientAccumulation=1)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")

    process = subprocess.Popen(
        worker_command("run", "--spec", str(spec_path)),
        cwd=GPU_RUNNER_DIR,
        env=worker_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if '"type":"progress"' in line:
                process.send_signal(signal.SIGTERM)
                break
        stdout, stderr = process.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = parse_stdout("".join(lines) + stdout)

    assert process.returncode == 143, stderr
    failed = events[-1]
    assert failed.type == "failed"
    assert failed.reason == "cancelled"
    [checkpoint] = [event for event in events if event.type == "checkpoint"]
    last_step = [event for event in events if event.type == "progress"][-1].step
    assert checkpoint.step == last_step
    assert Path(checkpoint.path) == (tmp_path / "checkpoint").resolve()
    assert (tmp_path / "checkpoint" / "adapter_model.safetensors").is_file()
    state = json.loads((tmp_path / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == checkpoint.step
    assert [event for event in events if event.type == "finished"] == []
    assert not (tmp_path / "adapter").exists()


def test_resume_matches_uninterrupted_run(tiny_base: Path, tmp_path: Path) -> None:
    """A run resumed from a step-2 checkpoint ends with the same adapter as one never stopped."""
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(12))
    # Dropout 0 and two epochs: the resumed run must replay the shuffled order of epoch 2 and
    # the optimizer moments exactly to reach the same weights.
    overrides = {"maxSteps": 5, "epochs": 2, "dropout": 0.0, "batchSize": 4, "gradientAccumulation": 1}

    whole_dir = tmp_path / "whole"
    whole_dir.mkdir()
    whole_spec = finetune_spec(whole_dir, tiny_base, dataset, **overrides)
    whole_spec["finetune"]["checkpointEverySteps"] = 2
    whole = run_worker_job(whole_spec, whole_dir / "spec.json")
    assert whole.returncode == 0, whole.stderr
    assert [event.step for event in whole.of_type("checkpoint")] == [2, 4]

    # Resume from a step-2 checkpoint of a second run, because the first run's folder now has step 4's.
    first_dir = tmp_path / "first"
    first_dir.mkdir()
    first_spec = finetune_spec(first_dir, tiny_base, dataset, **{**overrides, "maxSteps": 5})
    first_spec["finetune"]["checkpointEverySteps"] = 2
    process = subprocess.Popen(
        worker_command("run", "--spec", str(_write_spec(first_spec, first_dir))),
        cwd=GPU_RUNNER_DIR, env=worker_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in process.stdout:
            if '"type":"checkpoint"' in line:
                process.kill()
                break
        process.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert json.loads((first_dir / "checkpoint" / "trainer_state.json").read_text())["step"] == 2

    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    resumed_spec = finetune_spec(resumed_dir, tiny_base, dataset, **overrides)
    resumed_spec["finetune"]["resumeFrom"] = str(first_dir / "checkpoint")
    resumed = run_worker_job(resumed_spec, resumed_dir / "spec.json")
    assert resumed.returncode == 0, resumed.stderr
    assert [event.step for event in resumed.of_type("progress")] == [3, 4, 5]

    [whole_finished] = whole.of_type("finished")
    [resumed_finished] = resumed.of_type("finished")
    assert resumed_finished.summary.steps == 5
    assert resumed_finished.summary.trainLoss == pytest.approx(whole_finished.summary.trainLoss, rel=1e-4)
    whole_weights = load_file(str(whole_dir / "adapter" / "adapter_model.safetensors"))
    resumed_weights = load_file(str(resumed_dir / "adapter" / "adapter_model.safetensors"))
    assert whole_weights.keys() == resumed_weights.keys()
    for name, tensor in whole_weights.items():
        torch.testing.assert_close(resumed_weights[name], tensor, rtol=1e-4, atol=1e-6)


def test_resume_rejects_other_hyperparameters(tiny_base: Path, tmp_path: Path) -> None:
    dataset = write_jsonl(tmp_path / "data.jsonl", training_rows(8))
    first = finetune_spec(tmp_path / "a", tiny_base, dataset, maxSteps=2)
    (tmp_path / "a").mkdir()
    first["finetune"]["checkpointEverySteps"] = 1
    assert run_worker_job(first, tmp_path / "a" / "spec.json").returncode == 0

    (tmp_path / "b").mkdir()
    second = finetune_spec(tmp_path / "b", tiny_base, dataset, maxSteps=2, rank=8)
    second["finetune"]["resumeFrom"] = str(tmp_path / "a" / "checkpoint")
    run = run_worker_job(second, tmp_path / "b" / "spec.json")
    assert run.returncode != 0
    [failed] = run.of_type("failed")
    assert "other hyperparameters" in failed.message


def _write_spec(spec: dict, folder: Path) -> Path:
    path = folder / "spec.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return path
