"""The `evaluate` job: multiple-choice scores from lm-evaluation-harness on local task files.

Each task is a JSONL file of `{"id", "prompt", "choices", "gold"}` items. The worker
validates the items, writes the ones it will score to the work folder and hands the
harness a task configuration that reads that file through `dataset_path: json`, so
the harness never looks for a data set on a hub. Every subject (the base model, or
the base model with one PEFT adapter) is wrapped in the harness's HFLM and scored by
log-likelihood: accuracy, length-normalised accuracy (acc_norm) and their standard
errors come from the harness; macro-F1 is computed here from its per-item outputs.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .basemodel import load_base_model
from .data import read_jsonl_objects
from .errors import DataError, JobCancelled
from .events import ArtifactEvent, EvaluationResult, EvaluationSummary, EventWriter, FinishedEvent, MetricEvent, ProgressEvent
from .process import CancellationFlag
from .runtime import DeviceChoice
from .spec import EvaluateJob, Subject, TaskRef

RESULTS_FILE = "evaluation.json"
# Requests (one per item and choice) the harness scores in one forward pass.
BATCH_SIZE = 8
# Progress log events per subject, counted in forward passes.
PROGRESS_LOGS_PER_SUBJECT = 10
# Seconds between progress events within a subject; each subject also reports when it ends.
PROGRESS_INTERVAL_SECONDS = 1.0
# Resamples for the harness's bootstrap standard errors; accuracy and acc_norm use the
# closed form, so this only bounds the cost of any other metric.
BOOTSTRAP_ITERATIONS = 1000


class TaskItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    choices: list[str] = Field(min_length=2)
    gold: int = Field(ge=0)

    @model_validator(mode="after")
    def _check_choices(self) -> TaskItem:
        if any(not choice for choice in self.choices):
            raise ValueError("choices must be non-empty strings")
        if self.gold >= len(self.choices):
            raise ValueError(f"gold={self.gold} is out of range for {len(self.choices)} choices")
        return self


def read_task(path: Path, limit: int | None) -> list[TaskItem]:
    """Read the task's JSONL items (the first `limit` when given), raising DataError on a bad line."""
    items = []
    for line_number, value in read_jsonl_objects(path):
        if limit is not None and len(items) >= limit:
            break
        try:
            items.append(TaskItem.model_validate(value))
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or 'item'}: {problem['msg']}" for problem in error.errors()
            )
            raise DataError(f"{path.name} line {line_number}: invalid task item: {problems}") from error
    if not items:
        raise DataError(f"{path.name}: the task file has no items")
    return items


def write_items(path: Path, items: list[TaskItem]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(item.model_dump_json() + "\n" for item in items), encoding="utf-8")


def harness_task_config(name: str, items_path: Path, fewshot_path: Path | None, cache_dir: Path) -> dict[str, Any]:
    """Build the harness's task configuration for one local JSONL task.

    The prompt is the user turn and each choice the assistant's continuation: the
    worker runs the harness with the base model's chat template, which ends the
    context with the assistant header, so the choices follow with no delimiter.
    Few-shot examples come from `fewshot_path` when given, else from the scored items
    themselves (the harness never shows an item as its own example).
    """
    data_files = {"test": str(items_path)}
    if fewshot_path is not None:
        data_files["fewshot"] = str(fewshot_path)
    return {
        "task": name,
        "dataset_path": "json",
        # cache_dir keeps the `datasets` cache of converted files inside the job's work folder.
        "dataset_kwargs": {"data_files": data_files, "cache_dir": str(cache_dir)},
        "test_split": "test",
        "fewshot_split": "fewshot" if fewshot_path is not None else "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{prompt}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{gold}}",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1},
    }


def task_config_hash(config: dict[str, Any], items_path: Path, fewshot_path: Path | None) -> str:
    """Hash the task configuration with the bytes of its data files, so any change gives a new hash."""
    digest = hashlib.sha256()
    portable = {key: value for key, value in config.items() if key != "dataset_kwargs"}
    digest.update(json.dumps(portable, sort_keys=True).encode())
    for path in (items_path, fewshot_path):
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path is not None else b"-")
    return digest.hexdigest()


def is_classification(items: list[TaskItem]) -> bool:
    """Return whether every item offers the same choices in the same order, so a choice index is a class label."""
    return all(item.choices == items[0].choices for item in items)


def macro_f1(golds: list[int], predictions: list[int]) -> float:
    """Return the unweighted mean of per-class F1 over the classes that occur as gold or prediction.

    A class never predicted and never gold would add nothing meaningful, so it is left
    out, as scikit-learn's `f1_score(average="macro")` does. A class with no true
    positive scores 0.
    """
    classes = sorted(set(golds) | set(predictions))
    scores = []
    for label in classes:
        true_positives = sum(1 for gold, predicted in zip(golds, predictions) if gold == label and predicted == label)
        predicted_count = sum(1 for predicted in predictions if predicted == label)
        gold_count = sum(1 for gold in golds if gold == label)
        scores.append(2 * true_positives / (predicted_count + gold_count) if true_positives else 0.0)
    return sum(scores) / len(scores)


class ItemProgress:
    """Turns the harness's finished requests into `progress` events counted in items.

    The harness scores one request per item and choice, in its own order, so items done within
    a subject are estimated as the finished share of its requests. The count is exact at the
    end of each subject, and totals cover all subjects of the job.
    """

    def __init__(self, events: EventWriter, item_count: int, request_count: int, subject_count: int) -> None:
        self._events = events
        self._item_count = item_count
        self._request_count = max(1, request_count)
        self.total = item_count * subject_count
        self._subject_index = 0
        self._subject = ""
        self._requests = 0
        self._last_emit = 0.0

    def start_subject(self, index: int, key: str) -> None:
        self._subject_index = index
        self._subject = key
        self._requests = 0

    def request_done(self) -> None:
        self._requests += 1
        now = time.monotonic()
        if now - self._last_emit >= PROGRESS_INTERVAL_SECONDS:
            self._emit(min(self._item_count, self._item_count * self._requests // self._request_count))

    def subject_done(self) -> None:
        self._emit(self._item_count)

    def _emit(self, items_in_subject: int) -> None:
        done = self._subject_index * self._item_count + items_in_subject
        if done < 1:
            return
        self._last_emit = time.monotonic()
        self._events.emit(ProgressEvent(step=done, totalSteps=self.total, unit="items", subject=self._subject))


def _counting_hook(on_request: Any) -> Any:
    """Build a harness cache hook that counts finished log-likelihood requests and caches nothing."""
    from lm_eval.api.model import CacheHook

    class CountingHook(CacheHook):
        def __init__(self) -> None:
            super().__init__(None)

        def add_partial(self, attr: str, req: Any, res: Any) -> None:
            on_request()

    return CountingHook()


def _make_lm_class() -> type:
    """Subclass the harness's HFLM so every forward pass checks for cancellation and counts progress."""
    from lm_eval.models.huggingface import HFLM

    class CancellableHFLM(HFLM):
        def __init__(self, *args: Any, cancel: CancellationFlag, on_batch: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._cancel = cancel
            self._on_batch = on_batch

        def _model_call(self, inps: Any, attn_mask: Any = None, labels: Any = None) -> Any:
            if self._cancel.requested:
                raise JobCancelled(f"{self._cancel.signal_name} received; stopped the evaluation between batches")
            logits = super()._model_call(inps, attn_mask=attn_mask, labels=labels)
            self._on_batch()
            return logits

    return CancellableHFLM


def _load_subject_model(job: EvaluateJob, subject: Subject, device_choice: DeviceChoice) -> tuple[Any, Any]:
    """Load a fresh base model, with the subject's adapter when it has one."""
    from peft import PeftModel

    tokenizer, model = load_base_model(Path(job.baseModel.path), device_choice.device, device_choice.dtype)
    if subject.adapterPath is not None:
        adapter_path = Path(subject.adapterPath)
        missing = [name for name in ("adapter_config.json", "adapter_model.safetensors") if not (adapter_path / name).is_file()]
        if missing:
            raise DataError(f"adapter folder {str(adapter_path)!r} of subject {subject.key!r} is missing {missing}")
        model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=False)
    model.eval()
    return tokenizer, model


def evaluate_subject(
    model: Any,
    tokenizer: Any,
    task: TaskRef,
    config: dict[str, Any],
    item_count: int,
    request_count: int,
    device_choice: DeviceChoice,
    events: EventWriter,
    cancel: CancellationFlag,
    label: str,
    task_manager: Any,
    progress: ItemProgress | None = None,
) -> dict[str, Any]:
    """Run the harness on one loaded model and return its scores, per-item samples and seconds taken."""
    from lm_eval import simple_evaluate

    passes = {"done": 0}
    expected_passes = max(1, math.ceil(request_count / BATCH_SIZE))
    log_every = max(1, math.ceil(expected_passes / PROGRESS_LOGS_PER_SUBJECT))
    start = time.monotonic()

    def on_batch() -> None:
        passes["done"] += 1
        if passes["done"] % log_every == 0:
            events.log("info", f"subject {label!r}: {passes['done']} forward passes of batch {BATCH_SIZE}, {time.monotonic() - start:.1f} s")

    lm = _make_lm_class()(
        pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE, device=str(device_choice.device),
        cancel=cancel, on_batch=on_batch,
    )
    if progress is not None:
        # HFLM calls its cache hook once per finished request; the hook only counts.
        lm.set_cache_hook(_counting_hook(progress.request_done))
    output = simple_evaluate(
        model=lm,
        tasks=[config],
        num_fewshot=task.numFewshot,
        apply_chat_template=True,
        log_samples=True,
        random_seed=task.seed,
        numpy_random_seed=task.seed,
        torch_random_seed=task.seed,
        fewshot_random_seed=task.seed,
        bootstrap_iters=BOOTSTRAP_ITERATIONS,
        task_manager=task_manager,
        verbosity="WARNING",
    )
    scores = output["results"][task.name]
    samples = sorted(output["samples"][task.name], key=lambda sample: sample["doc_id"])
    if len(samples) != item_count:
        raise DataError(f"the harness scored {len(samples)} of the {item_count} items of task {task.name!r}")
    return {"scores": scores, "samples": samples, "seconds": time.monotonic() - start}


def _prediction(sample: dict[str, Any]) -> dict[str, Any]:
    log_likelihoods = [float(response[0]) for response in sample["filtered_resps"]]
    choices = sample["doc"]["choices"]
    return {
        "id": sample["doc"]["id"],
        "gold": int(sample["target"]),
        "predicted": max(range(len(log_likelihoods)), key=log_likelihoods.__getitem__),
        # acc_norm divides each log-likelihood by the choice's length in characters, as the harness does.
        "predictedNorm": max(range(len(log_likelihoods)), key=lambda i: log_likelihoods[i] / len(choices[i])),
        "logLikelihoods": log_likelihoods,
    }


def _standard_error(value: Any, items: int) -> float:
    """Return the harness's standard error as a number.

    With one item the sample standard deviation is undefined, so the harness reports "N/A".
    That case gives 0, the binomial standard error of a single item.
    """
    if isinstance(value, (int, float)):
        return float(value)
    if items < 2:
        return 0.0
    raise RuntimeError(f"lm_eval reported the standard error {value!r} for {items} items")


def run_evaluate(job: EvaluateJob, device_choice: DeviceChoice, events: EventWriter, cancel: CancellationFlag) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    harness_version = lm_eval.__version__
    # Every task is passed as a full configuration dict, so the harness's bundled task index
    # (thousands of YAML files, 8 CPU-seconds and more to scan) is never needed.
    task_manager = TaskManager(include_defaults=False)
    section = job.evaluate
    task = section.task
    work_dir = Path(job.workDir)
    items = read_task(Path(task.path), task.limit)
    items_path = work_dir / "harness" / f"{task.name}.items.jsonl"
    write_items(items_path, items)
    fewshot_path = None
    if task.fewshotPath is not None:
        fewshot_path = work_dir / "harness" / f"{task.name}.fewshot.jsonl"
        write_items(fewshot_path, read_task(Path(task.fewshotPath), None))
    if task.numFewshot >= len(items) and fewshot_path is None:
        raise DataError(
            f"numFewshot={task.numFewshot} needs more than {task.numFewshot} items in task {task.name!r}, which has {len(items)}; "
            "lower numFewshot or give a separate few-shot file"
        )
    config = harness_task_config(task.name, items_path, fewshot_path, work_dir / "harness" / "datasets-cache")
    config_hash = task_config_hash(config, items_path, fewshot_path)
    classification = is_classification(items)
    request_count = sum(len(item.choices) for item in items)

    results: list[EvaluationResult] = []
    predictions: dict[str, list[dict[str, Any]]] = {}
    progress = ItemProgress(events, len(items), request_count, len(section.subjects))
    for subject_index, subject in enumerate(section.subjects):
        tokenizer, model = _load_subject_model(job, subject, device_choice)
        progress.start_subject(subject_index, subject.key)
        run = evaluate_subject(
            model, tokenizer, task, config, len(items), request_count, device_choice, events, cancel, subject.key, task_manager, progress
        )
        progress.subject_done()
        scores = run["scores"]
        subject_predictions = [_prediction(sample) for sample in run["samples"]]
        correct = sum(1 for sample in run["samples"] if sample["acc"] == 1.0)
        f1 = macro_f1([p["gold"] for p in subject_predictions], [p["predicted"] for p in subject_predictions]) if classification else None
        result = EvaluationResult(
            subject=subject.key, task=task.name, correct=correct, total=len(items),
            accuracy=scores["acc,none"], stderr=_standard_error(scores["acc_stderr,none"], len(items)),
            accNorm=scores["acc_norm,none"], accNormStderr=_standard_error(scores["acc_norm_stderr,none"], len(items)), macroF1=f1,
            harnessVersion=harness_version, numFewshot=task.numFewshot, seed=task.seed, configHash=config_hash,
            durationSeconds=round(run["seconds"], 3),
        )
        events.emit(MetricEvent(name="accuracy", value=result.accuracy, subject=subject.key, task=task.name, correct=correct, total=len(items), stderr=result.stderr))
        events.emit(MetricEvent(name="acc_norm", value=result.accNorm, subject=subject.key, task=task.name, total=len(items), stderr=result.accNormStderr))
        if f1 is not None:
            events.emit(MetricEvent(name="macro_f1", value=f1, subject=subject.key, task=task.name, total=len(items)))
        events.log("info", f"subject {subject.key!r}: accuracy {result.accuracy:.3f}, acc_norm {result.accNorm:.3f} on {len(items)} items in {run['seconds']:.1f} s")
        results.append(result)
        predictions[subject.key] = subject_predictions
        # Free this subject's weights before the next subject loads a fresh copy.
        del model
        gc.collect()
        if device_choice.device.type == "cuda":
            torch.cuda.empty_cache()

    results_path = work_dir / RESULTS_FILE
    results_path.write_text(
        json.dumps(
            {"task": task.name, "results": [result.model_dump(exclude_none=True) for result in results], "predictions": predictions},
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    events.emit(ArtifactEvent(path=str(results_path.resolve()), role="evaluation"))
    events.emit(FinishedEvent(summary=EvaluationSummary(results=results)))
