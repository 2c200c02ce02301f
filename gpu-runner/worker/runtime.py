"""Device selection and the facts the `started` and `finished` events report."""

from __future__ import annotations

import os
import platform
import resource
import sys
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceChoice:
    device: torch.device
    dtype: torch.dtype

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def select_device() -> DeviceChoice:
    """Use the first CUDA device when present, in bfloat16 where it supports it.

    Float16 is never chosen: training in it needs loss scaling, which this worker
    does not implement, so CUDA devices without bfloat16 and CPUs get float32.
    """
    if torch.cuda.is_available():
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
        return DeviceChoice(torch.device("cuda", 0), dtype)
    return DeviceChoice(torch.device("cpu"), torch.float32)


def describe_hardware(device: torch.device) -> str:
    """Return the GPU name with its memory, or the CPU model with its core count."""
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        return f"{properties.name} ({properties.total_memory / 2**30:.0f} GiB)"
    return f"{_cpu_model_name()} ({os.cpu_count()} logical CPUs, {torch.get_num_threads()} torch threads)"


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def library_versions() -> dict[str, str]:
    import peft
    import transformers

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def peak_memory_bytes(device: torch.device) -> int:
    """Return the CUDA allocator's peak on a GPU, else the process's peak resident set size."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return int(max_rss if sys.platform == "darwin" else max_rss * 1024)
