"""The `export` job: an ONNX edge bundle of an adapter version, and the PyTorch reference for its edge report.

The worker writes the bundle (worker/onnx_export.py) to `outputDir`. In `referenceDir` it
writes what the runner needs to measure the ONNX graphs without a tokenizer or PyTorch:

- `reference.json`: the prompts as token ids, the vocabulary size, and the domain task's
  items as token ids (context and one continuation per choice) with PyTorch's
  log-likelihood of each choice;
- `reference-logits.f32`: PyTorch's next-token logits after each prompt, float32
  little-endian, one row of `vocabSize` values per prompt.

The format is described in docs/edge.md.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .errors import JobCancelled
from .evaluate import read_task
from .events import EventWriter, ExportSummary, FinishedEvent
from .onnx_export import export_bundle, load_model
from .process import CancellationFlag
from .runtime import peak_memory_bytes
from .spec import ExportJob

REFERENCE_FILE = "reference.json"
REFERENCE_LOGITS_FILE = "reference-logits.f32"
# Fixed prompts of the parity check: short, varied, and rendered with the chat template
# as one user turn, the way the adapters are trained and evaluated.
REFERENCE_PROMPTS = (
    "Is aspirin an anti-inflammatory drug? Answer yes or no.",
    "Summarize in one sentence: interest rates rose for the third quarter in a row.",
    "What is the boiling point of water at sea level in degrees Celsius?",
    "Translate to French: the machine stopped because the bearing overheated.",
)


def _check_cancel(cancel: CancellationFlag) -> None:
    if cancel.requested:
        raise JobCancelled(f"{cancel.signal_name} received; stopped the export")


def _render(tokenizer: Any, prompt: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)


def _encode_choice(tokenizer: Any, context: str, choice: str) -> tuple[list[int], list[int]]:
    """Split the tokens of context + choice into context and continuation, as lm-evaluation-harness does.

    Tokenizing the whole string first keeps the boundary token the model would see.
    """
    whole = tokenizer(context + choice, add_special_tokens=False)["input_ids"]
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    return whole[: len(context_ids)], whole[len(context_ids) :]


def _log_likelihood(model: Any, context_ids: list[int], continuation_ids: list[int]) -> float:
    ids = torch.tensor([context_ids + continuation_ids])
    with torch.no_grad():
        log_probs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    positions = range(len(context_ids) - 1, len(context_ids) + len(continuation_ids) - 1)
    return float(sum(log_probs[position, token] for position, token in zip(positions, continuation_ids)))


def _time_generation(model: Any, prompt_ids: list[int], tokens: int) -> float:
    """Return milliseconds per token of greedy decoding with the KV cache, after the prompt."""
    ids = torch.tensor([prompt_ids])
    with torch.no_grad():
        output = model(input_ids=ids, use_cache=True)
        cache = output.past_key_values
        token = output.logits[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(tokens):
            output = model(input_ids=token, past_key_values=cache, use_cache=True)
            cache = output.past_key_values
            token = output.logits[:, -1:].argmax(-1)
    return (time.perf_counter() - start) * 1000 / tokens


def write_reference(job: ExportJob, events: EventWriter, cancel: CancellationFlag) -> dict[str, Any]:
    """Write the PyTorch reference (see the module docstring); return its counts and timing."""
    from transformers import AutoTokenizer

    section = job.export
    out = Path(section.referenceDir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(job.baseModel.path, local_files_only=True)
    adapter = Path(section.adapterPath) if section.adapterPath else None
    model, _ = load_model(Path(job.baseModel.path), adapter)

    prompts = [tokenizer(_render(tokenizer, prompt), add_special_tokens=False)["input_ids"] for prompt in REFERENCE_PROMPTS]
    with open(out / REFERENCE_LOGITS_FILE, "wb") as stream:
        for ids in prompts:
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float().contiguous()
            if sys.byteorder != "little":
                logits = logits.byteswap()
            stream.write(logits.numpy().tobytes())
    _check_cancel(cancel)

    items = []
    if section.task is not None:
        for item in read_task(Path(section.task.path), section.task.limit):
            context = _render(tokenizer, item.prompt)
            choices = []
            for choice in item.choices:
                context_ids, continuation_ids = _encode_choice(tokenizer, context, choice)
                choices.append({"ids": continuation_ids, "pytorchLogLikelihood": _log_likelihood(model, context_ids, continuation_ids)})
            items.append({"id": item.id, "contextIds": context_ids, "choices": choices, "gold": item.gold})
            _check_cancel(cancel)
        events.log("info", f"scored {len(items)} items of task {section.task.name!r} with PyTorch for the edge report")

    ms_per_token = _time_generation(model, prompts[0], section.generateTokens)
    reference = {
        "formatVersion": 1,
        "vocabSize": model.config.vocab_size,
        "eosTokenId": model.config.eos_token_id,
        "logitsFile": REFERENCE_LOGITS_FILE,
        "prompts": [{"text": text, "ids": ids} for text, ids in zip(REFERENCE_PROMPTS, prompts)],
        "generateTokens": section.generateTokens,
        "task": None if section.task is None else {"name": section.task.name, "items": items},
        "pytorchMsPerToken": ms_per_token,
    }
    (out / REFERENCE_FILE).write_text(json.dumps(reference), encoding="utf-8")
    return {"prompts": len(prompts), "items": len(items), "msPerToken": ms_per_token}


def run_export(job: ExportJob, events: EventWriter, cancel: CancellationFlag) -> None:
    """Export the bundle, write the reference (merged exports only), then print `finished` with the manifest."""
    section = job.export
    start = time.monotonic()
    manifest = export_bundle(
        Path(job.baseModel.path), Path(section.outputDir),
        adapter_dir=Path(section.adapterPath) if section.adapterPath else None,
        lora_inputs=section.loraInputs, max_rank=section.maxRank, merged=section.merged, int8=section.merged,
    )
    export_seconds = time.monotonic() - start
    bundle_bytes = sum(entry["size"] for entry in manifest["files"])
    events.log("info", f"exported {len(manifest['variants'])} ONNX variants, {bundle_bytes} bytes, in {export_seconds:.1f} s")
    _check_cancel(cancel)

    # The edge report compares the merged graphs with PyTorch. A lora-inputs graph alone (the
    # playground's shared-base graph) gets no report, so it needs no reference.
    reference: dict[str, Any] = write_reference(job, events, cancel) if section.merged else {"prompts": None, "items": None, "msPerToken": None}
    events.emit(FinishedEvent(summary=ExportSummary(
        manifest=manifest,
        bundleBytes=bundle_bytes,
        exportSeconds=export_seconds,
        referencePrompts=reference["prompts"],
        referenceTaskItems=reference["items"],
        pytorchMsPerToken=reference["msPerToken"],
        pytorchPeakMemoryBytes=peak_memory_bytes(torch.device("cpu")),
    )))
