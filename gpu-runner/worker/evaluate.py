"""The `evaluate` job: multiple-choice accuracy by summed log-likelihood of each choice."""

from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .basemodel import load_base_model
from .data import read_jsonl_objects
from .errors import DataError, JobCancelled
from .events import ArtifactEvent, EvaluationResult, EvaluationSummary, EventWriter, FinishedEvent, MetricEvent
from .process import CancellationFlag
from .runtime import DeviceChoice
from .spec import EvaluateJob, Subject

RESULTS_FILE = "evaluation.json"
# Progress log events per subject; a 500-item run logs every 50 items.
PROGRESS_LOGS_PER_SUBJECT = 10


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
    return items


@dataclass(frozen=True)
class EncodedItem:
    item: TaskItem
    context_ids: list[int]
    choice_ids: list[list[int]]


def encode_item(tokenizer: Any, item: TaskItem, max_positions: int) -> tuple[EncodedItem, bool]:
    """Tokenize the chat-rendered prompt and each choice; return the encoding and whether the context was cut.

    Choices are tokenized on their own and appended to the context tokens. The
    ChatML generation prompt ends in a line break, so no token can span the
    boundary. A context longer than the model's positions allow, less the longest
    choice, loses its oldest tokens.
    """
    context_text = tokenizer.apply_chat_template(
        [{"role": "user", "content": item.prompt}], tokenize=False, add_generation_prompt=True
    )
    context_ids = list(tokenizer(context_text, add_special_tokens=False)["input_ids"])
    choice_ids = [list(tokenizer(choice, add_special_tokens=False)["input_ids"]) for choice in item.choices]
    if any(not ids for ids in choice_ids):
        raise DataError(f"task item {item.id!r}: a choice tokenizes to no tokens")
    room = max_positions - max(len(ids) for ids in choice_ids)
    if room < 1:
        raise DataError(f"task item {item.id!r}: a choice is longer than the model's {max_positions} positions")
    truncated = len(context_ids) > room
    return EncodedItem(item, context_ids[-room:], choice_ids), truncated


@torch.inference_mode()
def score_choices(model: Any, context_ids: list[int], choice_ids: list[list[int]], device: torch.device) -> list[float]:
    """Return each choice's summed log-probability as a continuation of the context.

    One forward pass over the context fills the KV cache and yields the distribution
    of every choice's first token. The cache is then repeated once per choice and a
    single batched pass over the choices (without their last token, which predicts
    nothing needed) yields the remaining log-probabilities. This costs one context
    pass per item instead of one per choice.
    """
    context = torch.tensor([context_ids], dtype=torch.long, device=device)
    output = model(input_ids=context, use_cache=True, logits_to_keep=1)
    first_log_probs = output.logits[0, -1].float().log_softmax(-1)
    scores = [first_log_probs[ids[0]].item() for ids in choice_ids]

    continuation_length = max(len(ids) for ids in choice_ids) - 1
    if continuation_length == 0:
        return scores

    cache = output.cache
    cache.batch_repeat_interleave(len(choice_ids))
    # Right padding is safe: each real token attends only to the context and to the
    # choice tokens before it, and padded positions' logits are never read.
    inputs = torch.zeros((len(choice_ids), continuation_length), dtype=torch.long, device=device)
    attention_mask = torch.zeros((len(choice_ids), len(context_ids) + continuation_length), dtype=torch.long, device=device)
    attention_mask[:, : len(context_ids)] = 1
    for row, ids in enumerate(choice_ids):
        inputs[row, : len(ids) - 1] = torch.tensor(ids[:-1], dtype=torch.long)
        attention_mask[row, len(context_ids) : len(context_ids) + len(ids) - 1] = 1
    logits = model(input_ids=inputs, attention_mask=attention_mask, cache=cache, use_cache=True).logits
    log_probs = logits.float().log_softmax(-1)
    for row, ids in enumerate(choice_ids):
        # Position j of the continuation pass predicts choice token j + 1.
        targets = torch.tensor(ids[1:], dtype=torch.long, device=device)
        scores[row] += log_probs[row, : len(ids) - 1].gather(-1, targets.unsqueeze(-1)).sum().item()
    return scores


def accuracy_stderr(accuracy: float, total: int) -> float:
    """Return the standard error of a proportion, sqrt(p(1-p)/n)."""
    return math.sqrt(accuracy * (1 - accuracy) / total)


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


def run_evaluate(job: EvaluateJob, device_choice: DeviceChoice, events: EventWriter, cancel: CancellationFlag) -> None:
    section = job.evaluate
    task = section.task
    items = read_task(Path(task.path), task.limit)
    results: list[EvaluationResult] = []
    predictions: dict[str, list[dict[str, Any]]] = {}

    for subject in section.subjects:
        tokenizer, model = _load_subject_model(job, subject, device_choice)
        max_positions = getattr(model.config, "max_position_embeddings", None) or 2**31
        correct = 0
        truncated_items = []
        subject_predictions = []
        log_every = max(1, math.ceil(len(items) / PROGRESS_LOGS_PER_SUBJECT))
        start = time.monotonic()

        for index, item in enumerate(items, start=1):
            if cancel.requested:
                raise JobCancelled(
                    f"{cancel.signal_name} received; stopped evaluating subject {subject.key!r} after {index - 1} of {len(items)} items"
                )
            encoded, truncated = encode_item(tokenizer, item, max_positions)
            if truncated:
                truncated_items.append(item.id)
            scores = score_choices(model, encoded.context_ids, encoded.choice_ids, device_choice.device)
            predicted = max(range(len(scores)), key=scores.__getitem__)
            correct += predicted == item.gold
            subject_predictions.append(
                {"id": item.id, "gold": item.gold, "predicted": predicted, "logLikelihoods": scores}
            )
            if index % log_every == 0 or index == len(items):
                seconds = time.monotonic() - start
                events.log(
                    "info",
                    f"subject {subject.key!r}: {index}/{len(items)} items, accuracy so far {correct / index:.3f}, "
                    f"{seconds / index:.2f} s per item",
                )

        if truncated_items:
            events.log("warning", f"subject {subject.key!r}: cut the oldest context tokens of items {truncated_items[:20]}")
        accuracy = correct / len(items)
        stderr = accuracy_stderr(accuracy, len(items))
        events.emit(
            MetricEvent(
                name="accuracy", value=accuracy, subject=subject.key, task=task.name,
                correct=correct, total=len(items), stderr=stderr,
            )
        )
        results.append(
            EvaluationResult(subject=subject.key, task=task.name, correct=correct, total=len(items), accuracy=accuracy, stderr=stderr)
        )
        predictions[subject.key] = subject_predictions
        # Free this subject's weights before the next subject loads a fresh copy.
        del model
        gc.collect()
        if device_choice.device.type == "cuda":
            torch.cuda.empty_cache()

    results_path = Path(job.workDir) / RESULTS_FILE
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(
        json.dumps(
            {"task": task.name, "results": [result.model_dump() for result in results], "predictions": predictions},
            indent=1,
        )
        + "\n",
        encoding="utf-8",
    )
    events.emit(ArtifactEvent(path=str(results_path.resolve()), role="evaluation"))
    events.emit(FinishedEvent(summary=EvaluationSummary(results=results)))
