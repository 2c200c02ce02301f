"""Multiple-choice evaluation: cached scoring against a full forward pass, and the evaluate job."""

from __future__ import annotations

import json
import math
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch

from worker.basemodel import MANIFEST_NAME, load_base_model
from worker.errors import DataError
from worker.evaluate import TaskItem, accuracy_stderr, encode_item, read_task, score_choices
from worker.tests.helpers import (
    GPU_RUNNER_DIR,
    PREPARED_SMOLLM2,
    WORKER_TIMEOUT_SECONDS,
    TrainedAdapter,
    parse_stdout,
    run_worker_job,
    worker_command,
    worker_environment,
    write_jsonl,
)

CPU = torch.device("cpu")


def full_forward_log_likelihood(model: Any, context_ids: list[int], choice_ids: list[int]) -> float:
    """Sum log p(choice token | everything before it) from one uncached pass over context + choice."""
    input_ids = torch.tensor([context_ids + choice_ids])
    with torch.no_grad():
        log_probs = model(input_ids=input_ids).logits[0].float().log_softmax(-1)
    start = len(context_ids)
    return sum(log_probs[start + offset - 1, token].item() for offset, token in enumerate(choice_ids))


@pytest.fixture(scope="module")
def tiny_model(tiny_base: Path) -> tuple[Any, Any]:
    tokenizer, model = load_base_model(tiny_base, CPU, torch.float32)
    model.eval()
    return tokenizer, model


def test_cached_scores_match_full_forward(tiny_model: tuple[Any, Any]) -> None:
    tokenizer, model = tiny_model
    item = TaskItem(
        id="q1",
        prompt="Does aspirin reduce the risk of a second heart attack? Context: " + "trial data " * 40,
        choices=["yes", "no", "maybe, the evidence is mixed", "It depends on the dose and the patient."],
        gold=0,
    )
    encoded, truncated = encode_item(tokenizer, item, max_positions=2048)
    assert not truncated
    assert len({len(ids) for ids in encoded.choice_ids}) > 1, "choices must differ in token count to test padding"

    cached = score_choices(model, encoded.context_ids, encoded.choice_ids, CPU)

    direct = [full_forward_log_likelihood(model, encoded.context_ids, ids) for ids in encoded.choice_ids]
    assert cached == pytest.approx(direct, abs=1e-4)


def test_single_token_choices_match_full_forward(tiny_model: tuple[Any, Any]) -> None:
    tokenizer, model = tiny_model
    item = TaskItem(id="q2", prompt="Pick one.", choices=["A", "B", "C"], gold=1)
    encoded, _ = encode_item(tokenizer, item, max_positions=2048)
    assert all(len(ids) == 1 for ids in encoded.choice_ids)

    cached = score_choices(model, encoded.context_ids, encoded.choice_ids, CPU)

    direct = [full_forward_log_likelihood(model, encoded.context_ids, ids) for ids in encoded.choice_ids]
    assert cached == pytest.approx(direct, abs=1e-4)


def test_long_context_loses_oldest_tokens(tiny_model: tuple[Any, Any]) -> None:
    tokenizer, _ = tiny_model
    item = TaskItem(id="q3", prompt="word " * 100, choices=["yes", "no"], gold=0)
    full, _ = encode_item(tokenizer, item, max_positions=2048)

    cut, truncated = encode_item(tokenizer, item, max_positions=50)

    assert truncated
    assert len(cut.context_ids) == 50 - 1
    assert cut.context_ids == full.context_ids[-49:]


def test_stderr_formula() -> None:
    assert accuracy_stderr(0.75, 4) == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert accuracy_stderr(1.0, 10) == 0.0


def test_task_limit_and_bad_gold(tmp_path: Path) -> None:
    rows = [{"id": str(index), "prompt": "p", "choices": ["a", "b"], "gold": index % 2} for index in range(5)]
    path = write_jsonl(tmp_path / "task.jsonl", rows)
    assert [item.id for item in read_task(path, limit=2)] == ["0", "1"]
    assert len(read_task(path, limit=None)) == 5

    write_jsonl(path, rows + [{"id": "x", "prompt": "p", "choices": ["a", "b"], "gold": 2}])
    with pytest.raises(DataError, match="line 6.*gold=2"):
        read_task(path, limit=None)


def certain_task_rows() -> list[dict[str, Any]]:
    """Return items whose arg max is fixed whatever the model's weights.

    The long choice repeats the short one, so its first token is the short choice's
    token and every further token adds a negative log-probability: the short choice
    always scores higher. Gold is the short choice except in item 2, so the first four
    items give accuracy 3/4 and all five give 4/5, for any weights.
    """
    rows = []
    for index, gold in enumerate([0, 0, 1, 0, 0]):
        rows.append({"id": f"item-{index}", "prompt": f"Question {index}: is it so?", "choices": ["yes", "yes yes yes"], "gold": gold})
    return rows


def evaluate_spec(work_dir: Path, base_path: Path, task_path: Path, subjects: list[dict[str, Any]], limit: int | None) -> dict[str, Any]:
    return {
        "jobId": "test-evaluate",
        "kind": "evaluate",
        "workDir": str(work_dir),
        "baseModel": {"id": "tiny-random-llama", "path": str(base_path)},
        "evaluate": {"task": {"name": "certain", "path": str(task_path), "limit": limit}, "subjects": subjects},
    }


def test_certain_task_tokenization(tiny_tokenizer: Any) -> None:
    short = tiny_tokenizer("yes", add_special_tokens=False)["input_ids"]
    long = tiny_tokenizer("yes yes yes", add_special_tokens=False)["input_ids"]
    assert len(short) == 1
    assert long[0] == short[0]
    assert len(long) > 1


def test_evaluate_job_on_certain_task(tiny_base: Path, trained_adapter: TrainedAdapter, tmp_path: Path) -> None:
    task = write_jsonl(tmp_path / "task.jsonl", certain_task_rows())
    subjects = [{"key": "base"}, {"key": "adapter-version:1", "adapterPath": str(trained_adapter.adapter_dir)}]

    run = run_worker_job(evaluate_spec(tmp_path, tiny_base, task, subjects, limit=4), tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    types = [event_type for event_type in run.types() if event_type != "log"]
    assert types == ["started", "metric", "metric", "artifact", "finished"]
    metrics = run.of_type("metric")
    assert [metric.subject for metric in metrics] == ["base", "adapter-version:1"]
    for metric in metrics:
        assert metric.name == "accuracy"
        assert metric.task == "certain"
        assert (metric.correct, metric.total) == (3, 4)
        assert metric.value == pytest.approx(0.75)
        assert metric.stderr == pytest.approx(math.sqrt(0.75 * 0.25 / 4))

    [finished] = run.of_type("finished")
    results = finished.summary.results
    assert [(result.subject, result.correct, result.total) for result in results] == [
        ("base", 3, 4),
        ("adapter-version:1", 3, 4),
    ]
    for result in results:
        assert 0 <= result.accuracy <= 1
        assert result.accuracy == pytest.approx(result.correct / result.total)


def test_evaluate_job_writes_predictions(tiny_base: Path, tmp_path: Path) -> None:
    task = write_jsonl(tmp_path / "task.jsonl", certain_task_rows())

    run = run_worker_job(evaluate_spec(tmp_path, tiny_base, task, [{"key": "base"}], limit=None), tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    [artifact] = run.of_type("artifact")
    assert artifact.role == "evaluation"
    saved = json.loads(Path(artifact.path).read_text())
    predictions = saved["predictions"]["base"]
    assert [prediction["id"] for prediction in predictions] == [f"item-{index}" for index in range(5)]
    assert all(prediction["predicted"] == 0 for prediction in predictions)
    assert all(scores[0] > scores[1] for scores in (prediction["logLikelihoods"] for prediction in predictions))
    assert saved["results"][0]["correct"] == 4


def test_evaluate_missing_adapter_fails(tiny_base: Path, tmp_path: Path) -> None:
    task = write_jsonl(tmp_path / "task.jsonl", certain_task_rows())
    subjects = [{"key": "adapter-version:9", "adapterPath": str(tmp_path / "no-adapter")}]

    run = run_worker_job(evaluate_spec(tmp_path, tiny_base, task, subjects, limit=None), tmp_path / "spec.json")

    assert run.returncode == 1
    assert run.events[-1].type == "failed"
    assert run.events[-1].reason == "data_error"
    assert "adapter_model.safetensors" in run.events[-1].message


def test_evaluate_sigterm_exits_143(tiny_base: Path, tmp_path: Path) -> None:
    rows = [{"id": str(index), "prompt": f"Question {index}?", "choices": ["yes", "no"], "gold": 0} for index in range(3000)]
    task = write_jsonl(tmp_path / "task.jsonl", rows)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(evaluate_spec(tmp_path, tiny_base, task, [{"key": "base"}], limit=None)))

    process = subprocess.Popen(
        worker_command("run", "--spec", str(spec_path)),
        cwd=GPU_RUNNER_DIR, env=worker_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            # The first progress log comes after 300 of the 3000 items.
            if "items, accuracy so far" in line:
                process.send_signal(signal.SIGTERM)
                break
        stdout, stderr = process.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    events = parse_stdout("".join(lines) + stdout)

    assert process.returncode == 143, stderr
    assert events[-1].type == "failed"
    assert events[-1].reason == "cancelled"
    assert "'base'" in events[-1].message
    assert [event for event in events if event.type in ("metric", "finished")] == []


@pytest.mark.skipif(
    not (PREPARED_SMOLLM2 / MANIFEST_NAME).is_file(),
    reason="needs the prepared SmolLM2 base: python -m worker prepare-base --out ../.data/models/smollm2-135m-instruct",
)
def test_smollm2_prefers_true_answer() -> None:
    tokenizer, model = load_base_model(PREPARED_SMOLLM2, CPU, torch.float32)
    model.eval()
    item = TaskItem(id="capital", prompt="What is the capital of France?", choices=["Banana.", "The capital of France is Paris."], gold=1)
    encoded, _ = encode_item(tokenizer, item, max_positions=model.config.max_position_embeddings)

    scores = score_choices(model, encoded.context_ids, encoded.choice_ids, CPU)

    assert scores[1] > scores[0]
    direct = [full_forward_log_likelihood(model, encoded.context_ids, ids) for ids in encoded.choice_ids]
    assert scores == pytest.approx(direct, abs=1e-3)
