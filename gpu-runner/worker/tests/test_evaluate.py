"""Multiple-choice evaluation through lm-evaluation-harness: hand-computed scores and the evaluate job."""

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
from worker.evaluate import TaskItem, is_classification, macro_f1, read_task
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


def hand_log_likelihoods(tokenizer: Any, model: Any, prompt: str, choices: list[str]) -> list[float]:
    """Score each choice with one plain forward pass over the chat-rendered prompt followed by the choice.

    The choice's tokens are those of prompt + choice after the prompt's tokens, and each
    contributes log p(token | everything before it). Like the harness, the context's
    trailing whitespace (the line break after the assistant header) moves to the start
    of every choice, so it is scored too.
    """
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    context = rendered.rstrip()
    choices = [rendered[len(context):] + choice for choice in choices]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    scores = []
    for choice in choices:
        whole_ids = tokenizer(context + choice, add_special_tokens=False)["input_ids"]
        assert whole_ids[: len(context_ids)] == context_ids
        with torch.no_grad():
            log_probs = model(input_ids=torch.tensor([whole_ids])).logits[0].float().log_softmax(-1)
        scores.append(sum(log_probs[position - 1, whole_ids[position]].item() for position in range(len(context_ids), len(whole_ids))))
    return scores


def mean_stderr(values: list[float]) -> float:
    """Return the standard error of a mean from the sample standard deviation (n - 1), as the harness reports it."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1)) / math.sqrt(len(values))


THREE_ITEMS = [
    {"id": "q1", "prompt": "Does aspirin lower the risk of a second heart attack?", "choices": ["yes", "no", "maybe"], "gold": 0},
    {"id": "q2", "prompt": "Is a common cold caused by bacteria?", "choices": ["yes", "no", "maybe"], "gold": 1},
    {"id": "q3", "prompt": "Does coffee cure diabetes? Context: " + "a small trial " * 10, "choices": ["yes", "no", "maybe"], "gold": 2},
]


def test_three_item_task_matches_hand_computation(tiny_base: Path, tmp_path: Path) -> None:
    task = write_jsonl(tmp_path / "task.jsonl", THREE_ITEMS)

    run = run_worker_job(evaluate_spec(tmp_path, tiny_base, task, [{"key": "base"}], limit=None), tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    tokenizer, model = load_base_model(tiny_base, CPU, torch.float32)
    model.eval()
    expected_scores = [hand_log_likelihoods(tokenizer, model, item["prompt"], item["choices"]) for item in THREE_ITEMS]
    expected_predicted = [max(range(3), key=scores.__getitem__) for scores in expected_scores]
    expected_norm = [max(range(3), key=lambda i, s=scores, c=item["choices"]: s[i] / len(c[i])) for scores, item in zip(expected_scores, THREE_ITEMS)]
    hits = [float(predicted == item["gold"]) for predicted, item in zip(expected_predicted, THREE_ITEMS)]
    norm_hits = [float(predicted == item["gold"]) for predicted, item in zip(expected_norm, THREE_ITEMS)]

    [artifact] = run.of_type("artifact")
    saved = json.loads(Path(artifact.path).read_text())
    predictions = saved["predictions"]["base"]
    for prediction, scores in zip(predictions, expected_scores):
        assert prediction["logLikelihoods"] == pytest.approx(scores, abs=1e-3)
    assert [prediction["predicted"] for prediction in predictions] == expected_predicted

    [finished] = run.of_type("finished")
    [result] = finished.summary.results
    assert result.correct == sum(hits)
    assert result.accuracy == pytest.approx(sum(hits) / 3)
    assert result.stderr == pytest.approx(mean_stderr(hits))
    assert result.accNorm == pytest.approx(sum(norm_hits) / 3)
    assert result.accNormStderr == pytest.approx(mean_stderr(norm_hits))
    assert result.macroF1 == pytest.approx(macro_f1([0, 1, 2], expected_predicted))
    assert result.numFewshot == 0
    assert result.seed == 1234
    assert result.harnessVersion == __import__("lm_eval").__version__


def test_macro_f1_by_hand() -> None:
    # Always "yes" on 3 yes, 1 no, 1 maybe: F1(yes) = 2*3/(5+3) = 0.75, the others 0.
    assert macro_f1([0, 0, 0, 1, 2], [0, 0, 0, 0, 0]) == pytest.approx(0.25)
    assert macro_f1([0, 1, 2], [0, 1, 2]) == 1.0
    # Gold 0 0 1 1, predicted 0 1 1 1: F1(0) = 2/3, F1(1) = 4/5.
    assert macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_macro_f1_matches_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    golds = [0, 1, 2, 2, 1, 0, 0, 2, 1, 3]
    predictions = [0, 2, 2, 1, 1, 0, 3, 2, 0, 0]
    assert macro_f1(golds, predictions) == pytest.approx(f1_score(golds, predictions, average="macro"))


def test_classification_needs_same_choices() -> None:
    same = [TaskItem(id=str(i), prompt="p", choices=["yes", "no"], gold=i % 2) for i in range(3)]
    assert is_classification(same)
    mixed = same + [TaskItem(id="x", prompt="p", choices=["no", "yes"], gold=0)]
    assert not is_classification(mixed)


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
    types = [event_type for event_type in run.types() if event_type not in ("log", "progress")]
    # Per subject: accuracy, acc_norm and macro-F1, because every item offers the same two choices.
    assert types == ["started"] + ["metric"] * 6 + ["artifact", "finished"]
    assert [metric.name for metric in run.of_type("metric")] == ["accuracy", "acc_norm", "macro_f1"] * 2
    metrics = [metric for metric in run.of_type("metric") if metric.name == "accuracy"]
    assert [metric.subject for metric in metrics] == ["base", "adapter-version:1"]
    for metric in metrics:
        assert metric.name == "accuracy"
        assert metric.task == "certain"
        assert (metric.correct, metric.total) == (3, 4)
        assert metric.value == pytest.approx(0.75)
        # Hits 1, 1, 0, 1: sample standard deviation 0.5, so the standard error is 0.5 / 2.
        assert metric.stderr == pytest.approx(0.25)

    [finished] = run.of_type("finished")
    results = finished.summary.results
    assert [(result.subject, result.correct, result.total) for result in results] == [
        ("base", 3, 4),
        ("adapter-version:1", 3, 4),
    ]
    for result in results:
        assert 0 <= result.accuracy <= 1
        assert result.accuracy == pytest.approx(result.correct / result.total)
        # Always the short choice on gold 0, 0, 1, 0: F1 = 2*3/(4+3) for it and 0 for the other.
        assert result.macroF1 == pytest.approx(3 / 7)
    assert results[0].configHash == results[1].configHash

    # Progress counts items over both subjects and ends exact at each subject's last item.
    progress = run.of_type("progress")
    assert {(event.unit, event.totalSteps) for event in progress} == {("items", 8)}
    steps = [event.step for event in progress]
    assert steps == sorted(steps)
    assert (4, "base") in [(event.step, event.subject) for event in progress]
    assert (progress[-1].step, progress[-1].subject) == (8, "adapter-version:1")
    assert all(event.loss is None for event in progress)


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


def test_one_item_has_zero_stderr(tiny_base: Path, tmp_path: Path) -> None:
    # The harness reports "N/A" for the standard error of a single item.
    task = write_jsonl(tmp_path / "task.jsonl", certain_task_rows())

    run = run_worker_job(evaluate_spec(tmp_path, tiny_base, task, [{"key": "base"}], limit=1), tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    [result] = run.of_type("finished")[0].summary.results
    assert result.total == 1
    assert result.stderr == 0.0
    assert result.accNormStderr == 0.0


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
            # The first progress log comes after a tenth of the 750 forward passes.
            if "forward passes of batch" in line:
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
    assert "stopped the evaluation" in events[-1].message
    assert [event for event in events if event.type in ("metric", "finished")] == []


@pytest.mark.skipif(
    not (PREPARED_SMOLLM2 / MANIFEST_NAME).is_file(),
    reason="needs the prepared SmolLM2 base: python -m worker prepare-base --out ../.data/models/smollm2-135m-instruct",
)
def test_smollm2_prefers_true_answer(tmp_path: Path) -> None:
    rows = [
        {"id": "capital", "prompt": "What is the capital of France?", "choices": ["Banana.", "The capital of France is Paris."], "gold": 1},
        {"id": "sum", "prompt": "What is two plus two?", "choices": ["Two plus two is four.", "Purple."], "gold": 0},
    ]
    task = write_jsonl(tmp_path / "task.jsonl", rows)

    run = run_worker_job(evaluate_spec(tmp_path, PREPARED_SMOLLM2, task, [{"key": "base"}], limit=None), tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr
    [finished] = run.of_type("finished")
    assert finished.summary.results[0].correct == 2


def test_fewshot_changes_config_hash(tiny_base: Path, tmp_path: Path) -> None:
    task = write_jsonl(tmp_path / "task.jsonl", THREE_ITEMS)
    examples = write_jsonl(tmp_path / "fewshot.jsonl", [{"id": "e1", "prompt": "Is water wet?", "choices": ["yes", "no", "maybe"], "gold": 0}])
    zero_shot = run_worker_job(evaluate_spec(tmp_path / "zero", tiny_base, task, [{"key": "base"}], limit=None), tmp_path / "zero.json")
    spec = evaluate_spec(tmp_path / "one", tiny_base, task, [{"key": "base"}], limit=None)
    spec["evaluate"]["task"].update({"numFewshot": 1, "fewshotPath": str(examples), "seed": 7})

    one_shot = run_worker_job(spec, tmp_path / "one.json")

    assert zero_shot.returncode == 0, zero_shot.stderr
    assert one_shot.returncode == 0, one_shot.stderr
    [zero_result] = zero_shot.of_type("finished")[0].summary.results
    [one_result] = one_shot.of_type("finished")[0].summary.results
    assert (one_result.numFewshot, one_result.seed) == (1, 7)
    assert one_result.configHash != zero_result.configHash
    # The example adds context, so at least one choice's log-likelihood moves.
    zero_scores = json.loads((tmp_path / "zero" / "evaluation.json").read_text())["predictions"]["base"]
    one_scores = json.loads((tmp_path / "one" / "evaluation.json").read_text())["predictions"]["base"]
    assert [p["logLikelihoods"] for p in zero_scores] != [p["logLikelihoods"] for p in one_scores]


def test_fewshot_needs_enough_items(tiny_base: Path, tmp_path: Path) -> None:
    task = write_jsonl(tmp_path / "task.jsonl", THREE_ITEMS)
    spec = evaluate_spec(tmp_path, tiny_base, task, [{"key": "base"}], limit=None)
    spec["evaluate"]["task"]["numFewshot"] = 3

    run = run_worker_job(spec, tmp_path / "spec.json")

    assert run.returncode == 1
    assert run.events[-1].reason == "data_error"
    assert "numFewshot=3" in run.events[-1].message
