"""Compare the evaluate job's throughput with the lm_eval command line on the same task, model and machine.

Both sides score the same JSONL items with the same harness version, batch size, chat
template and device. The job runs as the runner starts it (`python -m worker run --spec`);
the command line runs as `python -m lm_eval run` with a YAML task that reads the same file.
Each side is timed from process start to exit, so both include Python and library imports
and model loading; the job's own scoring time (`durationSeconds`) is reported as well.

Usage (from the repository root):
    .venv/bin/python bench/eval-harness.py --model .data/models/smollm2-135m-instruct --items 60
Prints one JSON object and writes it to bench/results/ when --out is given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
GPU_RUNNER_DIR = REPOSITORY_ROOT / "gpu-runner"
BATCH_SIZE = 8  # the worker's BATCH_SIZE in gpu-runner/worker/evaluate.py


def arc_items(data_dir: Path, count: int) -> list[dict]:
    """Read the first `count` ARC-Easy test items as task lines."""
    items = []
    with (data_dir / "arc" / "arc_easy.jsonl").open(encoding="utf-8") as lines:
        for index, line in enumerate(lines):
            if index >= count:
                break
            row = json.loads(line)
            prompt = row["query"].removesuffix("Answer:").rstrip()
            items.append({"id": f"arc-easy-{index + 1}", "prompt": prompt, "choices": row["choices"], "gold": row["gold"]})
    return items


def offline_environment() -> dict[str, str]:
    environment = dict(os.environ)
    environment.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return environment


def run_job(model: Path, task_path: Path, work_dir: Path) -> dict:
    spec = {
        "jobId": "bench-eval", "kind": "evaluate", "workDir": str(work_dir),
        "baseModel": {"id": "bench", "path": str(model.resolve())},
        "evaluate": {"task": {"name": "arc_easy_local", "path": str(task_path)}, "subjects": [{"key": "base"}]},
    }
    spec_path = work_dir / "spec.json"
    work_dir.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    start = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--spec", str(spec_path)],
        cwd=GPU_RUNNER_DIR, env=offline_environment(), capture_output=True, text=True, check=False,
    )
    wall = time.monotonic() - start
    if completed.returncode != 0:
        raise SystemExit(f"the evaluate job failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    [result] = [event for event in events if event["type"] == "finished"][0]["summary"]["results"]
    return {"wallSeconds": round(wall, 2), "scoringSeconds": result["durationSeconds"], "accuracy": result["accuracy"], "accNorm": result["accNorm"]}


def run_command_line(model: Path, task_path: Path, work_dir: Path) -> tuple[dict, list[str]]:
    task_dir = work_dir / "tasks"
    task_dir.mkdir(parents=True, exist_ok=True)
    # The same configuration the worker builds in harness_task_config, as YAML.
    (task_dir / "arc_easy_local.yaml").write_text(
        "task: arc_easy_local\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {task_path}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{prompt}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{gold}}"\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
        "metadata:\n  version: 1\n",
        encoding="utf-8",
    )
    command = [
        sys.executable, "-m", "lm_eval", "run", "--model", "hf",
        "--model_args", f"pretrained={model.resolve()},dtype=float32",
        "--tasks", "arc_easy_local", "--include_path", str(task_dir), "--apply_chat_template",
        "--batch_size", str(BATCH_SIZE), "--device", "cpu", "--output_path", str(work_dir / "out"),
    ]
    start = time.monotonic()
    completed = subprocess.run(command, env=offline_environment(), capture_output=True, text=True, check=False)
    wall = time.monotonic() - start
    if completed.returncode != 0:
        raise SystemExit(f"lm_eval failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
    [results_file] = sorted((work_dir / "out").rglob("results_*.json"))
    scores = json.loads(results_file.read_text())["results"]["arc_easy_local"]
    return {"wallSeconds": round(wall, 2), "accuracy": scores["acc,none"], "accNorm": scores["acc_norm,none"]}, command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="base model folder (config.json, model.safetensors, tokenizer)")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", REPOSITORY_ROOT.parent / "shared" / "data")), help="folder with arc/arc_easy.jsonl")
    parser.add_argument("--items", type=int, default=60, help="ARC-Easy test items to score")
    parser.add_argument("--out", type=Path, help="write the JSON record to this file")
    parser.add_argument("--command-line-first", action="store_true", help="run lm_eval before the job, to see how much the order matters")
    arguments = parser.parse_args()

    import lm_eval
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-eval-") as scratch:
        work = Path(scratch)
        task_path = work / "arc_easy_local.jsonl"
        items = arc_items(arguments.data_dir, arguments.items)
        task_path.write_text("".join(json.dumps(item) + "\n" for item in items), encoding="utf-8")
        if arguments.command_line_first:
            command_line, command = run_command_line(arguments.model, task_path, work / "cli")
            job = run_job(arguments.model, task_path, work / "job")
        else:
            job = run_job(arguments.model, task_path, work / "job")
            command_line, command = run_command_line(arguments.model, task_path, work / "cli")

    count = len(items)
    record = {
        "task": f"ARC-Easy test, first {count} items ({sum(len(item['choices']) for item in items)} choices)",
        "model": str(arguments.model), "batchSize": BATCH_SIZE,
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__, "lmEval": lm_eval.__version__},
        "job": {**job, "itemsPerSecond": round(count / job["wallSeconds"], 3), "scoringItemsPerSecond": round(count / job["scoringSeconds"], 3)},
        "commandLine": {**command_line, "itemsPerSecond": round(count / command_line["wallSeconds"], 3), "command": " ".join(command)},
        "order": "command line first" if arguments.command_line_first else "job first",
        "loadAverageAfter": os.getloadavg()[0],
        "ratioJobToCommandLine": round(command_line["wallSeconds"] / job["wallSeconds"], 3),
        "sameScores": job["accuracy"] == command_line["accuracy"] and job["accNorm"] == command_line["accNorm"],
    }
    print(json.dumps(record, indent=1))
    if arguments.out:
        arguments.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
