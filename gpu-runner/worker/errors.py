"""Exceptions that carry the `failed` event's reason (see docs/worker-contract.md)."""

from __future__ import annotations


class WorkerError(Exception):
    """Base of the worker's own errors; `reason` is the `failed` event's reason."""

    reason = "crash"


class DataError(WorkerError):
    """A data set or task file that the worker cannot use: unreadable, malformed or empty."""

    reason = "data_error"


class SpecError(WorkerError):
    """An invalid job spec, or one the base model folder cannot satisfy.

    Examples are a folder without model.safetensors and targetModules that name no
    module of the model. The platform writes the spec and validates it first, so
    this is a platform bug and is reported as a crash.
    """

    reason = "crash"


class JobCancelled(WorkerError):
    """Raised after SIGTERM or SIGINT, once the current training step or evaluation item has finished."""

    reason = "cancelled"


class HardwareError(WorkerError):
    """A job option that this machine cannot run, such as 4-bit QLoRA or bfloat16 without a suitable CUDA device."""

    reason = "cuda_error"
