"""Process setup that must happen before torch and transformers are imported.

Everything here uses the standard library only, so the `run` command can redirect
stdout and install its SIGTERM handler within milliseconds of starting, before the
seconds-long imports of torch and transformers.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import TextIO

from .errors import WorkerError


def configure_offline_environment() -> None:
    """Make Hugging Face libraries use local files only and keep their chatter off stdout.

    Must run before transformers or huggingface_hub are imported, because both read
    these variables at import time. The values override the caller's environment,
    because the worker must never contact a hub.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    # lm-evaluation-harness loads task data through `datasets`, which must read local files only.
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def take_stdout_for_events() -> TextIO:
    """Return a line-buffered stream on the original stdout and point fd 1 at stderr.

    After this call anything else that writes to stdout (Python prints, C libraries,
    tqdm) lands on stderr, which the runner keeps as log lines, so stdout carries only
    the events written to the returned stream.
    """
    sys.stdout.flush()
    event_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(event_fd, "w", buffering=1, encoding="utf-8")


class CancellationFlag:
    """Records SIGTERM (and SIGINT) so the job loops can stop at a step boundary.

    The handler only sets a flag: emitting events or saving from inside a signal
    handler could interleave with a half-written line or a half-saved file.
    """

    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


# Substrings of RuntimeError messages that come from the CUDA runtime or its libraries.
_CUDA_ERROR_MARKERS = ("CUDA error", "CUBLAS_STATUS", "CUDNN_STATUS", "cuDNN error", "NCCL error", "device-side assert")
_CPU_OUT_OF_MEMORY_MARKER = "DefaultCPUAllocator: can't allocate memory"
_MAX_MESSAGE_CHARS = 4000


def classify_failure(error: BaseException) -> tuple[str, str]:
    """Return the `failed` event's reason and message for an exception.

    torch's exception types are looked up only if torch was imported, so an error
    raised while importing torch is still classified (as a crash).
    """
    message = f"{type(error).__name__}: {error}"
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 3] + "..."
    if isinstance(error, WorkerError):
        return error.reason, str(error)[:_MAX_MESSAGE_CHARS] or message

    torch = sys.modules.get("torch")
    out_of_memory_types: tuple[type[BaseException], ...] = (MemoryError,)
    cuda_error_types: tuple[type[BaseException], ...] = ()
    if torch is not None:
        out_of_memory_types += (torch.OutOfMemoryError,)
        cuda_error_types += (torch.AcceleratorError,)

    text = str(error)
    if isinstance(error, out_of_memory_types) or _CPU_OUT_OF_MEMORY_MARKER in text:
        return "out_of_memory", f"{message} (reduce batchSize or maxSeqLength, or use a device with more memory)"
    if isinstance(error, cuda_error_types) or any(marker in text for marker in _CUDA_ERROR_MARKERS):
        return "cuda_error", message
    return "crash", message
