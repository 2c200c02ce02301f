"""The baseline of bench/finetune-speed.ts: a plain transformers Trainer + PEFT LoRA fine-tune.

It trains on exactly the examples the worker trains on: the worker's own tokenization
(chat template, assistant-only labels, left truncation) and validation split, so both
sides see the same tokens. Everything after that is the stock path: LoraConfig with
"all-linear", Trainer with DataCollatorForSeq2Seq padding each batch to its longest
example, full-vocabulary logits and the model's built-in loss.

Prints one JSON line: tokensPerSecond (non-padding training tokens / seconds in
trainer.train()), peakMemoryBytes (max RSS), validationLoss (mean token loss over the
held-out examples), steps, trainTokens, trainSeconds.

Run from gpu-runner/ so that `worker` imports:
  ../.venv/bin/python ../bench/trainer-baseline.py --spec SPEC.json
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu-runner"))

from worker.process import configure_offline_environment  # noqa: E402

configure_offline_environment()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from worker.data import IGNORE_INDEX, read_conversations, tokenize_dataset  # noqa: E402
from worker.finetune import TrainingPlan, split_validation  # noqa: E402
from worker.spec import load_spec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True, help="the worker job spec whose data and hyperparameters to use")
    arguments = parser.parse_args()

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    job = load_spec(arguments.spec)
    options = job.finetune.hyperparameters
    torch.manual_seed(options.seed)
    tokenizer = AutoTokenizer.from_pretrained(job.baseModel.path, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(job.baseModel.path, dtype=torch.float32, local_files_only=True, use_safetensors=True)

    tokenized = tokenize_dataset(tokenizer, read_conversations(Path(job.finetune.datasetPath)), options.maxSeqLength)
    training, validation = split_validation(tokenized.examples, options.validationFraction, options.seed)
    # A list of dicts is a map-style dataset for the Trainer's DataLoader.
    train_set = [{"input_ids": example.input_ids, "labels": example.labels} for example in training]

    config = LoraConfig(
        r=options.rank, lora_alpha=options.alpha, lora_dropout=options.dropout, target_modules=options.targetModules, task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, config)
    plan = TrainingPlan(len(training), options.batchSize, options.gradientAccumulation, options.epochs, options.maxSteps)
    training_arguments = TrainingArguments(
        output_dir=str(Path(job.workDir) / "baseline"),
        per_device_train_batch_size=options.batchSize,
        gradient_accumulation_steps=options.gradientAccumulation,
        num_train_epochs=options.epochs,
        learning_rate=options.learningRate,
        lr_scheduler_type=options.lrScheduler,
        # The worker's warmup: ceil(warmupRatio × steps). transformers 5 has no warmup_ratio argument.
        warmup_steps=math.ceil(options.warmupRatio * plan.total_steps),
        # torch.optim.AdamW's default, which the worker uses.
        weight_decay=0.01,
        max_grad_norm=1.0,
        seed=options.seed,
        use_cpu=not torch.cuda.is_available(),
        save_strategy="no",
        eval_strategy="no",
        logging_steps=10_000,
        report_to=[],
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = Trainer(
        model=model,
        args=training_arguments,
        train_dataset=train_set,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE_INDEX),
    )
    started = time.monotonic()
    result = trainer.train()
    train_seconds = time.monotonic() - started

    train_tokens = sum(len(example.input_ids) for example in training) * options.epochs
    print(
        json.dumps(
            {
                "side": "baseline",
                "tokensPerSecond": train_tokens / train_seconds,
                "trainSeconds": train_seconds,
                "trainTokens": train_tokens,
                "steps": result.global_step,
                "finalTrainLoss": result.training_loss,
                "validationLoss": validation_loss(model, validation) if validation else None,
                "peakMemoryBytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            }
        ),
        flush=True,
    )


def validation_loss(model, examples) -> float:
    """Mean token loss over the examples, one at a time, computed as the worker computes it."""
    model.eval()
    total = 0.0
    count = 0
    with torch.no_grad():
        for example in examples:
            logits = model(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0, :-1]
            targets = torch.tensor(example.labels[1:])
            selected = targets != IGNORE_INDEX
            total += F.cross_entropy(logits[selected].float(), targets[selected], reduction="sum").item()
            count += int(selected.sum())
    return total / count


if __name__ == "__main__":
    main()
