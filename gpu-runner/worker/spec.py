"""Pydantic models of the job spec that the runner writes (see docs/worker-contract.md).

Unknown fields are rejected so that a misspelt hyperparameter fails the job instead
of silently falling back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from .errors import SpecError


class _SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _require_absolute(path: str) -> str:
    if not Path(path).is_absolute():
        raise ValueError(f"path {path!r} must be absolute because the worker's working directory is not the job's")
    return path


AbsolutePath = Annotated[str, Field(min_length=1), AfterValidator(_require_absolute)]


class BaseModelRef(_SpecModel):
    id: str = Field(min_length=1, description="Marketplace id of the base model, written into the adapter's metadata.")
    path: AbsolutePath


# Module names of a Llama-style decoder block that targetModules may list: the attention
# projections and the MLP. The output layer (lm_head) is never a target.
BLOCK_LINEAR_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class AdaLoraOptions(_SpecModel):
    """AdaLoRA's rank budget and schedule, as PEFT's AdaLoraConfig names them (init_r, target_r, tinit, tfinal, deltaT)."""

    initialRank: int = Field(ge=1, description="Rank every targeted module starts with (init_r).")
    targetRank: int = Field(ge=1, description="Average rank left after pruning (target_r).")
    tinit: int = Field(ge=0, description="Optimizer steps before pruning starts.")
    tfinal: int = Field(ge=0, description="Optimizer steps at the end with the final ranks fixed.")
    deltaT: int = Field(ge=1, description="Optimizer steps between two rank reallocations.")

    @model_validator(mode="after")
    def _require_target_below_initial(self) -> "AdaLoraOptions":
        if self.targetRank > self.initialRank:
            raise ValueError(
                f"adalora.targetRank {self.targetRank} exceeds adalora.initialRank {self.initialRank}; "
                "AdaLoRA only prunes, so set targetRank at most initialRank"
            )
        return self


class Hyperparameters(_SpecModel):
    """Training options. Fields added after the first contract version have defaults, so older specs still load."""

    rank: int = Field(ge=1)
    alpha: float = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)
    targetModules: Literal["all-linear"] | Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    useRslora: bool = Field(default=False, description="Scale the update by alpha/sqrt(rank) instead of alpha/rank.")
    useDora: bool = Field(default=False, description="Weight-decomposed LoRA (DoRA).")
    adalora: AdaLoraOptions | None = Field(default=None, description="Train AdaLoRA instead of LoRA; rank is then unused.")
    learningRate: float = Field(gt=0)
    lrScheduler: Literal["linear", "cosine", "constant"] = "linear"
    epochs: int = Field(ge=1)
    maxSteps: int | None = Field(ge=1)
    batchSize: int = Field(ge=1)
    gradientAccumulation: int = Field(ge=1)
    maxSeqLength: int = Field(ge=2)
    packing: bool = Field(default=False, description="Pack several examples into each row of maxSeqLength tokens.")
    warmupRatio: float = Field(ge=0, le=1)
    seed: int
    dataParallel: bool = Field(default=True, description="Allow torchrun data parallelism when the runner offers several processes.")
    validationFraction: float = Field(default=0, ge=0, le=0.5, description="Share of examples held out for validation loss.")
    evalEverySteps: int | None = Field(default=None, ge=1, description="Compute the validation loss every this many steps.")
    earlyStoppingPatience: int | None = Field(
        default=None, ge=1, description="Stop after this many validation losses in a row without a new best."
    )
    checkpointEverySteps: int | None = Field(default=None, ge=1, description="Save a checkpoint every this many steps.")
    quantization: Literal["none", "4bit"] = Field(default="none", description="4bit loads the base model in NF4 (QLoRA).")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="auto: bfloat16 on a CUDA device that supports it, else float32."
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> "Hyperparameters":
        if self.adalora is not None and self.useDora:
            raise ValueError("adalora and useDora cannot be combined because PEFT's AdaLoRA has no DoRA; turn one off")
        if self.earlyStoppingPatience is not None and (self.validationFraction == 0 or self.evalEverySteps is None):
            raise ValueError(
                "earlyStoppingPatience needs a validation loss; set validationFraction above 0 and evalEverySteps"
            )
        return self


class FinetuneSection(_SpecModel):
    datasetPath: AbsolutePath
    outputDir: AbsolutePath
    hyperparameters: Hyperparameters
    resumeFrom: AbsolutePath | None = Field(
        default=None, description="Checkpoint folder written by an earlier attempt; training continues after its step."
    )
    checkpointEverySeconds: float | None = Field(
        default=None, gt=0, description="Save a checkpoint when this many seconds passed since the last one."
    )
    checkpointEverySteps: int | None = Field(default=None, ge=1, description="Save a checkpoint every this many steps.")


class TaskRef(_SpecModel):
    name: str = Field(min_length=1)
    path: AbsolutePath
    limit: int | None = Field(default=None, ge=1, description="Evaluate only the first `limit` items.")
    numFewshot: int = Field(default=0, ge=0, description="Solved examples shown before each item.")
    seed: int = Field(default=1234, ge=0, description="Seed of the harness's few-shot sampling and of Python, NumPy and torch.")
    fewshotPath: AbsolutePath | None = Field(
        default=None, description="JSONL items to draw few-shot examples from; absent draws them from the task's other items."
    )


class Subject(_SpecModel):
    key: str = Field(min_length=1)
    adapterPath: AbsolutePath | None = Field(default=None, description="Adapter folder; absent for the base model alone.")


class EvaluateSection(_SpecModel):
    task: TaskRef
    subjects: Annotated[list[Subject], Field(min_length=1)]

    @field_validator("subjects")
    @classmethod
    def _require_unique_keys(cls, subjects: list[Subject]) -> list[Subject]:
        keys = [subject.key for subject in subjects]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValueError(f"subject keys must be unique, but {duplicates} occur more than once")
        return subjects


class ExportTask(_SpecModel):
    name: str = Field(min_length=1)
    path: AbsolutePath
    limit: int = Field(default=8, ge=1, le=200, description="Items of the task the edge report scores (the first `limit`).")


class ExportSection(_SpecModel):
    outputDir: AbsolutePath = Field(description="Folder for the ONNX files, tokenizer files and manifest.json that the runner uploads.")
    referenceDir: AbsolutePath = Field(description="Folder for the PyTorch reference that the runner's edge report compares against.")
    adapterPath: AbsolutePath | None = Field(default=None, description="LoRA adapter folder to merge; absent exports the base model.")
    loraInputs: bool = Field(default=False, description="Also export the base graph with LoRA A and B as inputs.")
    merged: bool = Field(default=True, description="Export the merged fp32 and int8 graphs and the PyTorch reference; false needs loraInputs and skips both.")
    maxRank: int = Field(default=64, ge=1, le=4096, description="Rank the LoRA inputs are padded to.")
    task: ExportTask | None = Field(default=None, description="Domain task whose items the edge report scores; absent skips scoring.")
    generateTokens: int = Field(default=16, ge=1, le=512, description="Tokens generated greedily to time PyTorch per token.")


class _JobBase(_SpecModel):
    jobId: str = Field(min_length=1)
    workDir: AbsolutePath
    baseModel: BaseModelRef


class FinetuneJob(_JobBase):
    kind: Literal["finetune"]
    finetune: FinetuneSection


class EvaluateJob(_JobBase):
    kind: Literal["evaluate"]
    evaluate: EvaluateSection


class ExportJob(_JobBase):
    kind: Literal["export"]
    export: ExportSection


JobSpec = Annotated[Union[FinetuneJob, EvaluateJob, ExportJob], Field(discriminator="kind")]


def load_spec(path: Path) -> FinetuneJob | EvaluateJob | ExportJob:
    """Read and validate the job spec file, raising SpecError with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError(f"cannot read job spec {str(path)!r}: {error}") from error
    try:
        return TypeAdapter(JobSpec).validate_json(text)
    except ValidationError as error:
        raise SpecError(f"invalid job spec {str(path)!r}: {error}") from error
