"""Device selection and the facts the `started` and `finished` events report."""

from __future__ import annotations

import importlib.util
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


def resolve_precision(choice: DeviceChoice, precision: str, quantization: str) -> DeviceChoice:
    """Apply a fine-tune's precision and quantization options to the device choice.

    Raises HardwareError, naming what is missing, when the machine cannot run them:
    bfloat16 needs a CUDA device that supports it, and 4-bit QLoRA needs a CUDA device
    and the bitsandbytes package.
    """
    from .errors import HardwareError

    on_cuda = choice.device.type == "cuda"
    if quantization == "4bit":
        problems = []
        if not on_cuda:
            problems.append(f"a CUDA GPU (this worker runs on {choice.device.type})")
        if importlib.util.find_spec("bitsandbytes") is None:
            problems.append("the bitsandbytes package (`pip install bitsandbytes` in the worker's environment)")
        if problems:
            raise HardwareError(
                f"quantization \"4bit\" (QLoRA) needs {' and '.join(problems)}; "
                "set quantization to \"none\" or run the job on a CUDA runner with bitsandbytes installed"
            )
    if precision == "bf16":
        if not (on_cuda and torch.cuda.is_bf16_supported()):
            raise HardwareError(
                f"precision \"bf16\" needs a CUDA device with bfloat16 support (compute capability 8.0 or newer), "
                f"but this worker runs on {describe_hardware(choice.device)}; set precision to \"auto\" or \"fp32\""
            )
        return DeviceChoice(choice.device, torch.bfloat16)
    if precision == "fp32":
        return DeviceChoice(choice.device, torch.float32)
    return choice


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


def resident_memory_bytes() -> int:
    """Return the process's current resident set size, or its peak where /proc is missing."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return peak_memory_bytes(torch.device("cpu"))


def gpu_memory_bytes(device: torch.device) -> int | None:
    """Return the bytes the CUDA allocator holds on `device`, or None off CUDA."""
    if device.type != "cuda":
        return None
    return int(torch.cuda.memory_allocated(device))
