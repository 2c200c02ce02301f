"""The event schema: the shared fixture file validates, malformed events are rejected."""

from __future__ import annotations

import io
import json
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from worker.events import EventWriter, FailedEvent, MetricEvent, WorkerEvent, parse_event
from worker.tests.helpers import REPOSITORY_ROOT

FIXTURE = REPOSITORY_ROOT / "tests" / "fixtures" / "worker-events.jsonl"
EVENT_TYPES = {
    model.model_fields["type"].default for model in get_args(get_args(WorkerEvent)[0])
}


def fixture_lines() -> list[str]:
    return [line for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_fixture_lines_validate() -> None:
    for number, line in enumerate(fixture_lines(), start=1):
        event = parse_event(line)
        assert event.type == json.loads(line)["type"], f"line {number}"


def test_fixture_covers_each_event_type() -> None:
    types = [json.loads(line)["type"] for line in fixture_lines()]
    assert set(types) == EVENT_TYPES


def test_fixture_has_every_summary() -> None:
    summaries = [parse_event(line).summary for line in fixture_lines() if json.loads(line)["type"] == "finished"]
    assert sorted(type(summary).__name__ for summary in summaries) == ["EvaluationSummary", "ExportSummary", "FinetuneSummary"]


def test_fixture_round_trips_unchanged() -> None:
    for line in fixture_lines():
        dumped = parse_event(line).model_dump(mode="json", exclude_none=True)
        assert dumped == json.loads(line)


VALID_PROGRESS: dict[str, Any] = {
    "type": "progress", "time": 1.0, "step": 1, "totalSteps": 2, "epoch": 0.5,
    "loss": 1.0, "learningRate": 0.001, "tokensPerSecond": 10.0,
}

INVALID_EVENTS: dict[str, dict[str, Any]] = {
    "missing type": {k: v for k, v in VALID_PROGRESS.items() if k != "type"},
    "unknown type": {**VALID_PROGRESS, "type": "heartbeat"},
    "missing time": {k: v for k, v in VALID_PROGRESS.items() if k != "time"},
    "extra field": {**VALID_PROGRESS, "accuracy": 0.5},
    "step zero": {**VALID_PROGRESS, "step": 0},
    "negative loss": {**VALID_PROGRESS, "loss": -0.1},
    "step progress without loss": {k: v for k, v in VALID_PROGRESS.items() if k != "loss"},
    "unknown progress unit": {"type": "progress", "time": 1.0, "step": 1, "totalSteps": 2, "unit": "tokens"},
    "string step": {**VALID_PROGRESS, "step": "one"},
    "unknown failure reason": {"type": "failed", "time": 1.0, "reason": "oops", "message": "x"},
    "empty failure message": {"type": "failed", "time": 1.0, "reason": "crash", "message": ""},
    "relative artifact path": {"type": "artifact", "time": 1.0, "path": "adapter", "role": "adapter"},
    "unknown artifact role": {"type": "artifact", "time": 1.0, "path": "/a", "role": "model"},
    "unknown device": {
        "type": "started", "time": 1.0, "device": "tpu", "dtype": "float32", "hardware": "x",
        "versions": {"python": "3", "torch": "2", "transformers": "5", "peft": "0"},
    },
    "missing version": {
        "type": "started", "time": 1.0, "device": "cpu", "dtype": "float32", "hardware": "x",
        "versions": {"python": "3", "torch": "2", "transformers": "5"},
    },
    "unknown log level": {"type": "log", "time": 1.0, "level": "fatal", "message": "x"},
    "summary of neither kind": {"type": "finished", "time": 1.0, "summary": {"steps": 1}},
    "accuracy above one": {
        "type": "finished", "time": 1.0,
        "summary": {"results": [{"subject": "base", "task": "t", "correct": 3, "total": 2, "accuracy": 1.5, "stderr": 0.0}]},
    },
}


@pytest.mark.parametrize("case", sorted(INVALID_EVENTS))
def test_invalid_event_rejected(case: str) -> None:
    with pytest.raises(ValidationError):
        parse_event(json.dumps(INVALID_EVENTS[case]))


def test_nan_loss_rejected() -> None:
    # Python's json writes NaN, which is not JSON; the schema must not let it through.
    with pytest.raises(ValidationError):
        parse_event(json.dumps({**VALID_PROGRESS, "loss": float("nan")}))


def test_writer_omits_absent_optional_fields() -> None:
    stream = io.StringIO()
    EventWriter(stream).emit(MetricEvent(name="accuracy", value=0.5))
    line = stream.getvalue()
    assert line.endswith("\n")
    assert set(json.loads(line)) == {"type", "time", "name", "value"}


def test_writer_output_parses_back() -> None:
    stream = io.StringIO()
    writer = EventWriter(stream)
    writer.emit(FailedEvent(reason="data_error", message="data.jsonl line 3: invalid JSON"))
    writer.log("info", "hello")
    events = [parse_event(line) for line in stream.getvalue().splitlines()]
    assert [event.type for event in events] == ["failed", "log"]
    assert events[0].reason == "data_error"
