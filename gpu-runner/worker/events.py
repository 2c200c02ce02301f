"""Pydantic models of the events the worker prints on stdout, one JSON object per line.

The same schema lives in `server/contracts/worker-events.ts` (zod), and both test
suites validate `tests/fixtures/worker-events.jsonl`, so a change here needs a change
there and in `docs/worker-contract.md`. Optional fields are left out of the JSON
rather than written as null, because zod's `.optional()` rejects null.
"""

from __future__ import annotations

import sys
import time
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal, TextIO, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator, model_validator

FailureReason = Literal["out_of_memory", "data_error", "cuda_error", "crash", "timeout", "cancelled"]
ArtifactRole = Literal["adapter", "checkpoint", "evaluation"]
LogLevel = Literal["debug", "info", "warning", "error"]

# Validation context key set by parse_event.
_PARSING = "parsing"

NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class _StrictModel(BaseModel):
    # NaN and infinity are rejected because JSON has no literal for them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Event(_StrictModel):
    # The default serves the worker, which stamps events as it builds them. A line
    # read back with parse_event must carry its own time, as the contract requires.
    time: float = Field(default_factory=time.time, gt=0, description="Unix time in seconds.")

    @model_validator(mode="before")
    @classmethod
    def _require_time_when_parsing(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get(_PARSING) and isinstance(data, dict) and "time" not in data:
            raise ValueError("field 'time' is required")
        return data


class Versions(_StrictModel):
    python: str
    torch: str
    transformers: str
    peft: str


class StartedEvent(_Event):
    type: Literal["started"] = "started"
    device: Literal["cuda", "cpu"]
    dtype: Literal["float32", "bfloat16", "float16"]
    hardware: str = Field(min_length=1)
    versions: Versions


class ProgressEvent(_Event):
    """Training progress in optimizer steps, or evaluation progress in scored items.

    With `unit="items"` the counts are items over all subjects of the job, and the training
    fields are absent. Otherwise `epoch`, `loss`, `learningRate` and `tokensPerSecond` are
    required.
    """

    type: Literal["progress"] = "progress"
    step: int = Field(ge=1)
    totalSteps: int = Field(ge=1)
    unit: Literal["steps", "items"] | None = None
    subject: str | None = None
    epoch: NonNegativeFloat | None = None
    loss: NonNegativeFloat | None = None
    learningRate: NonNegativeFloat | None = None
    tokensPerSecond: NonNegativeFloat | None = None
    # Added after the first version, so events without them stay valid.
    etaSeconds: NonNegativeFloat | None = Field(
        default=None, description="Estimated seconds until the last step, from this run's mean step time."
    )
    cpuMemoryBytes: NonNegativeInt | None = Field(default=None, description="Resident set size of the worker process.")
    gpuMemoryBytes: NonNegativeInt | None = Field(
        default=None, description="Bytes allocated by the CUDA caching allocator; absent on the CPU."
    )

    @model_validator(mode="after")
    def _require_training_fields(self) -> ProgressEvent:
        if self.unit != "items":
            missing = [name for name in ("epoch", "loss", "learningRate", "tokensPerSecond") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a progress event in steps needs {', '.join(missing)}")
        return self


class CheckpointEvent(_Event):
    type: Literal["checkpoint"] = "checkpoint"
    step: NonNegativeInt
    path: str = Field(min_length=1)


class MetricEvent(_Event):
    type: Literal["metric"] = "metric"
    name: str = Field(min_length=1)
    value: float
    subject: str | None = None
    task: str | None = None
    correct: NonNegativeInt | None = None
    total: NonNegativeInt | None = None
    stderr: NonNegativeFloat | None = None


class ArtifactEvent(_Event):
    type: Literal["artifact"] = "artifact"
    path: str
    role: ArtifactRole

    @field_validator("path")
    @classmethod
    def _require_absolute_path(cls, path: str) -> str:
        if not PurePosixPath(path).is_absolute():
            raise ValueError(f"artifact path {path!r} must be absolute")
        return path


class LogEvent(_Event):
    type: Literal["log"] = "log"
    level: LogLevel
    message: str


class FinetuneSummary(_StrictModel):
    steps: NonNegativeInt
    epochs: NonNegativeFloat
    trainLoss: NonNegativeFloat
    finalLoss: NonNegativeFloat
    wallSeconds: NonNegativeFloat
    tokensPerSecond: NonNegativeFloat
    peakMemoryBytes: NonNegativeInt
    trainableParameters: NonNegativeInt
    totalParameters: NonNegativeInt
    examples: NonNegativeInt
    trainTokens: NonNegativeInt
    # Data-parallel processes that trained it (torchrun); tokensPerSecond counts them all.
    processes: Annotated[int, Field(ge=1)] = 1
    # Fields below were added later; a summary without them is still valid.
    validationExamples: NonNegativeInt = 0
    validationLoss: NonNegativeFloat | None = None
    truncatedExamples: NonNegativeInt = 0
    droppedExamples: NonNegativeInt = 0
    stoppedEarly: bool = False


class EvaluationResult(_StrictModel):
    subject: str = Field(min_length=1)
    task: str = Field(min_length=1)
    correct: NonNegativeInt
    total: int = Field(ge=1)
    accuracy: float = Field(ge=0, le=1)
    stderr: NonNegativeFloat
    # Accuracy when each choice's log-likelihood is divided by its length in characters.
    accNorm: float = Field(ge=0, le=1)
    accNormStderr: NonNegativeFloat
    # Mean per-class F1; present only for classification tasks, whose items all offer the same choices.
    macroF1: float | None = Field(default=None, ge=0, le=1)
    harnessVersion: str = Field(min_length=1, description="lm-evaluation-harness version that scored the items.")
    numFewshot: NonNegativeInt
    seed: NonNegativeInt
    configHash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the harness task configuration and its data files.")
    durationSeconds: NonNegativeFloat


class EvaluationSummary(_StrictModel):
    results: list[EvaluationResult]


class ExportSummary(_StrictModel):
    """Output of an export job: the bundle in outputDir and the PyTorch reference for the edge report."""

    manifest: dict[str, Any] = Field(description="The bundle's manifest.json, as written (see docs/edge.md).")
    bundleBytes: NonNegativeInt
    exportSeconds: NonNegativeFloat
    # The reference fields are null for an export without the merged graphs (nothing to compare).
    referencePrompts: NonNegativeInt | None
    referenceTaskItems: NonNegativeInt | None
    # Greedy decoding with the transformers KV cache, after the prompt, in milliseconds per token.
    pytorchMsPerToken: NonNegativeFloat | None
    pytorchPeakMemoryBytes: NonNegativeInt


class FinishedEvent(_Event):
    type: Literal["finished"] = "finished"
    # The summaries share no field names and forbid extra fields, so validation picks
    # exactly one of them.
    summary: FinetuneSummary | EvaluationSummary | ExportSummary


class FailedEvent(_Event):
    type: Literal["failed"] = "failed"
    reason: FailureReason
    message: str = Field(min_length=1)


WorkerEvent = Annotated[
    Union[
        StartedEvent,
        ProgressEvent,
        CheckpointEvent,
        MetricEvent,
        ArtifactEvent,
        LogEvent,
        FinishedEvent,
        FailedEvent,
    ],
    Field(discriminator="type"),
]

worker_event_adapter: TypeAdapter[WorkerEvent] = TypeAdapter(WorkerEvent)


def parse_event(line: str) -> WorkerEvent:
    """Validate one JSON line against the event schema and return the typed event."""
    return worker_event_adapter.validate_json(line, context={_PARSING: True})


class EventWriter:
    """Writes events as JSON lines to the stream the runner reads, flushing each line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdout

    def emit(self, event: _Event) -> None:
        self._stream.write(event.model_dump_json(exclude_none=True) + "\n")
        self._stream.flush()

    def log(self, level: LogLevel, message: str) -> None:
        self.emit(LogEvent(level=level, message=message))
