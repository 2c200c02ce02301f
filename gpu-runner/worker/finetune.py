"""The `finetune` job: LoRA training with a plain PyTorch loop, then saving the adapter."""

from __future__ import annotations

import json
import math
import random
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .basemodel import load_base_model
from .batching import TrainingRow, collate_rows, flatten_rows, pack_rows, single_rows
from .data import IGNORE_INDEX, TokenizedExample, read_conversations, tokenize_dataset
from .distributed import ProcessGroup, join
from .errors import DataError, JobCancelled, SpecError
from .events import (
    ArtifactEvent,
    CheckpointEvent,
    EventWriter,
    FinetuneSummary,
    FinishedEvent,
    MetricEvent,
    ProgressEvent,
)
from .kernels import use_segment_attention, use_sparse_dropout
from .process import CancellationFlag
from .runtime import DeviceChoice, gpu_memory_bytes, peak_memory_bytes, resident_memory_bytes
from .spec import BLOCK_LINEAR_MODULES, FinetuneJob, Hyperparameters

# Gradient norm clipping threshold, the transformers Trainer default (max_grad_norm=1.0).
MAX_GRAD_NORM = 1.0
# trainLoss in the summary is the mean loss of this many last steps (fewer if the run is shorter).
TRAIN_LOSS_WINDOW = 10
CHECKPOINT_FOLDER = "checkpoint"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainingPlan:
    """Step counts derived from the data set size and the hyperparameters."""

    examples: int
    batch_size: int
    gradient_accumulation: int
    epochs: int
    max_steps: int | None
    micro_batches_per_epoch: int = field(init=False)
    steps_per_epoch: int = field(init=False)
    total_steps: int = field(init=False)
    epochs_to_run: int = field(init=False)

    def __post_init__(self) -> None:
        self.micro_batches_per_epoch = math.ceil(self.examples / self.batch_size)
        # The last optimizer step of an epoch may accumulate fewer micro-batches.
        self.steps_per_epoch = math.ceil(self.micro_batches_per_epoch / self.gradient_accumulation)
        full_steps = self.epochs * self.steps_per_epoch
        # maxSteps caps the step count; it never extends training beyond `epochs`.
        self.total_steps = full_steps if self.max_steps is None else min(self.max_steps, full_steps)
        self.epochs_to_run = math.ceil(self.total_steps / self.steps_per_epoch)


def _check_target_modules(model: Any, target_modules: list[str]) -> None:
    leaf_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    full_names = {name for name, _ in model.named_modules()}
    unknown = [name for name in target_modules if name not in leaf_names and name not in full_names]
    if unknown:
        raise SpecError(
            f"targetModules {unknown} match no module of the base model; use \"all-linear\" or names "
            f"such as {sorted(leaf_names & set(BLOCK_LINEAR_MODULES))}"
        )
    output_layer = model.get_output_embeddings()
    for name, module in model.named_modules():
        if module is output_layer and (name in target_modules or name.rsplit(".", 1)[-1] in target_modules):
            raise SpecError(f"targetModules names the output layer {name!r}; LoRA applies only to the decoder blocks, so remove it")


def _block_linear_names(model: Any) -> list[str]:
    """Return the leaf names of the linear layers, less the output layer (PEFT's "all-linear" rule)."""
    output_layer = model.get_output_embeddings()
    return sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and module is not output_layer
        }
    )


def build_lora_model(model: Any, hyperparameters: Hyperparameters, base_model_id: str, total_steps: int) -> Any:
    """Wrap the model with a fresh LoRA (or AdaLoRA) adapter; only the adapter's parameters are trainable.

    total_steps is the run's optimizer step count, which AdaLoRA's rank schedule needs.
    """
    from peft import AdaLoraConfig, LoraConfig, get_peft_model

    target_modules = hyperparameters.targetModules
    if isinstance(target_modules, list):
        _check_target_modules(model, target_modules)
    adalora = hyperparameters.adalora
    if adalora is None:
        config: Any = LoraConfig(
            r=hyperparameters.rank,
            lora_alpha=hyperparameters.alpha,
            lora_dropout=hyperparameters.dropout,
            target_modules=target_modules,
            use_rslora=hyperparameters.useRslora,
            use_dora=hyperparameters.useDora,
            task_type="CAUSAL_LM",
        )
    else:
        if adalora.tinit + adalora.tfinal >= total_steps:
            raise SpecError(
                f"adalora.tinit ({adalora.tinit}) + adalora.tfinal ({adalora.tfinal}) must be below the run's "
                f"{total_steps} optimizer steps, or AdaLoRA never prunes; lower them or train for more steps"
            )
        config = AdaLoraConfig(
            init_r=adalora.initialRank,
            target_r=adalora.targetRank,
            tinit=adalora.tinit,
            tfinal=adalora.tfinal,
            deltaT=adalora.deltaT,
            total_step=total_steps,
            lora_alpha=hyperparameters.alpha,
            lora_dropout=hyperparameters.dropout,
            # Expanded here because "all-linear" is documented for LoRA only.
            target_modules=_block_linear_names(model) if target_modules == "all-linear" else target_modules,
            use_rslora=hyperparameters.useRslora,
            task_type="CAUSAL_LM",
        )
    peft_model = get_peft_model(model, config)
    # PEFT records the local folder path, which means nothing once the adapter is published.
    peft_model.peft_config["default"].base_model_name_or_path = base_model_id
    return peft_model


def labelled_loss_sum(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Return the summed next-token cross-entropy at labelled positions, running lm_head only there.

    The decoder runs on every token, but the output layer (hidden × vocabulary, the
    largest matrix of a small model) and the softmax run only on the positions whose
    next token is labelled. That skips the full-vocabulary logits of the prompt.
    NOTE: models that post-process logits in their forward beyond final_logit_softcapping
    (such as a logit_scale) are not handled here.
    """
    causal_lm = model.get_base_model()
    decoder = causal_lm.base_model
    # segment_bounds (flattened rows only) reaches the attention function through the layers' kwargs.
    segments = {"segment_bounds": batch["segment_bounds"]} if batch.get("segment_bounds") else {}
    hidden = decoder(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
        **segments,
    ).last_hidden_state
    targets = batch["labels"][:, 1:]
    selected = targets != IGNORE_INDEX
    states = hidden[:, :-1][selected]
    logits = causal_lm.get_output_embeddings()(states).float()
    softcap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets[selected], reduction="sum")


def adalora_orthogonal_penalty(model: Any) -> torch.Tensor:
    """Return AdaLoRA's orthogonality regularizer, as AdaLoraModel.forward adds it (PEFT 0.21).

    labelled_loss_sum bypasses that forward, so the training step adds this term itself.
    """
    penalties = []
    for name, parameter in model.named_parameters():
        if ("lora_A" in name or "lora_B" in name) and "default" in name and parameter.requires_grad:
            covariance = parameter @ parameter.T if "lora_A" in name else parameter.T @ parameter
            identity = torch.eye(*covariance.size(), device=covariance.device, dtype=covariance.dtype)
            penalties.append(torch.norm(covariance - identity, p="fro"))
    return torch.stack(penalties).mean()


def masked_token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Return the summed cross-entropy of the next-token predictions at labelled positions.

    Position t's logits predict labels[t + 1]. Only labelled logits are upcast to
    float32, which keeps the memory for bfloat16 logits of long prompts low.
    """
    shifted_logits = logits[:, :-1, :]
    targets = labels[:, 1:]
    selected = targets != IGNORE_INDEX
    return F.cross_entropy(shifted_logits[selected].float(), targets[selected], reduction="sum")


def _set_seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@dataclass
class TrainingState:
    """Counters of a run, saved in checkpoints so a resumed run reports the whole training."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    train_tokens: int = 0
    training_seconds: float = 0.0
    validation_losses: list[float] = field(default_factory=list)
    best_validation_loss: float | None = None
    evaluations_without_improvement: int = 0


OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


def _save_checkpoint(
    model: Any, optimizer: torch.optim.Optimizer, work_dir: Path, state: TrainingState, plan: TrainingPlan,
    hyperparameters: Hyperparameters,
) -> Path:
    """Save the adapter, the optimizer state and the run's counters under workDir/checkpoint.

    Everything is safetensors or JSON, so resuming never unpickles a file. The folder is
    written beside the old one and swapped in, so a crash mid-save keeps the previous checkpoint.
    """
    from safetensors.torch import save_file

    path = work_dir / CHECKPOINT_FOLDER
    staging = work_dir / f"{CHECKPOINT_FOLDER}.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    model.save_pretrained(str(staging), save_embedding_layers=False)

    optimizer_state = optimizer.state_dict()
    tensors = {"rng.torch": torch.get_rng_state()}
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            tensors[f"state.{index}.{name}"] = value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
    save_file(tensors, str(staging / OPTIMIZER_FILE))

    trainer_state = {
        "step": state.step,
        "totalSteps": plan.total_steps,
        "epoch": state.step / plan.steps_per_epoch,
        "lastLoss": state.losses[-1] if state.losses else None,
        "losses": state.losses,
        "trainTokens": state.train_tokens,
        "trainingSeconds": state.training_seconds,
        "validationLosses": state.validation_losses,
        "bestValidationLoss": state.best_validation_loss,
        "evaluationsWithoutImprovement": state.evaluations_without_improvement,
        "paramGroups": optimizer_state["param_groups"],
        "pythonRandom": list(random.getstate()[1]),
        "hyperparameters": hyperparameters.model_dump(),
    }
    (staging / STATE_FILE).write_text(json.dumps(trainer_state) + "\n", encoding="utf-8")
    if path.exists():
        shutil.rmtree(path)
    staging.rename(path)
    return path.resolve()


def _load_checkpoint(path: Path, model: Any, optimizer: torch.optim.Optimizer, hyperparameters: Hyperparameters) -> TrainingState:
    """Restore the adapter weights, optimizer state and counters saved by _save_checkpoint."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state_file = path / STATE_FILE
    if not state_file.is_file():
        raise SpecError(f"checkpoint {str(path)!r} has no {STATE_FILE}; it was not written by this worker")
    saved = json.loads(state_file.read_text(encoding="utf-8"))
    if saved.get("hyperparameters") != hyperparameters.model_dump():
        raise SpecError("the checkpoint was trained with other hyperparameters than this job's; it cannot be resumed")

    adapter = load_file(str(path / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, adapter)
    if getattr(result, "unexpected_keys", None):
        raise SpecError(f"checkpoint adapter has tensors this model lacks: {result.unexpected_keys[:5]}")

    tensors = load_file(str(path / OPTIMIZER_FILE))
    optimizer_state: dict[str, Any] = {"state": {}, "param_groups": saved["paramGroups"]}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            optimizer_state["state"].setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(optimizer_state)
    torch.set_rng_state(tensors["rng.torch"])
    random.setstate((3, tuple(saved["pythonRandom"]), None))
    return TrainingState(
        step=int(saved["step"]),
        losses=[float(loss) for loss in saved["losses"]],
        train_tokens=int(saved["trainTokens"]),
        training_seconds=float(saved["trainingSeconds"]),
        validation_losses=[float(loss) for loss in saved.get("validationLosses", [])],
        best_validation_loss=saved.get("bestValidationLoss"),
        evaluations_without_improvement=int(saved.get("evaluationsWithoutImprovement", 0)),
    )


def write_model_card(
    output_dir: Path, base_model_id: str, job_id: str, hyperparameters: Hyperparameters, summary: FinetuneSummary
) -> None:
    """Write README.md with Hugging Face model card front matter, replacing the one PEFT writes."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in hyperparameters.model_dump().items())
    text = f"""---
base_model: {json.dumps(base_model_id)}
library_name: peft
tags:
- lora
- peft
- adapter-marketplace
---

# LoRA adapter for {base_model_id}

Trained by job `{job_id}` of the adapter marketplace. Load it with
`PeftModel.from_pretrained(base_model, "<this folder>")`.

## Hyperparameters

| name | value |
| --- | --- |
{rows}

## Training

| metric | value |
| --- | --- |
| examples | {summary.examples} |
| optimizer steps | {summary.steps} |
| epochs | {summary.epochs:.3f} |
| final loss | {summary.finalLoss:.4f} |
| mean loss of the last {TRAIN_LOSS_WINDOW} steps | {summary.trainLoss:.4f} |
| trained tokens | {summary.trainTokens} |
| trainable parameters | {summary.trainableParameters} |
"""
    (output_dir / "README.md").write_text(text, encoding="utf-8")


def split_validation(examples: list[TokenizedExample], fraction: float, seed: int) -> tuple[list[TokenizedExample], list[TokenizedExample]]:
    """Hold out round(fraction × examples), at least one, chosen by the seed; return (training, validation)."""
    if fraction == 0:
        return examples, []
    count = max(1, round(fraction * len(examples)))
    if count >= len(examples):
        raise DataError(
            f"validationFraction={fraction} of {len(examples)} examples leaves none to train on; "
            "lower validationFraction or add examples"
        )
    held_out = set(random.Random(seed).sample(range(len(examples)), count))
    training = [example for index, example in enumerate(examples) if index not in held_out]
    validation = [example for index, example in enumerate(examples) if index in held_out]
    return training, validation


def validation_loss(
    model: Any, rows: list[TrainingRow], batch_size: int, pad_token_id: int, device: torch.device, processes: ProcessGroup
) -> float:
    """Return the mean token loss over the validation rows, with dropout off and no gradients.

    Under data parallelism each process scores its share and the sums are added, so every
    process gets the same loss and takes the same early-stopping decision.
    """
    rows = processes.share(rows)
    model.eval()
    loss_total = 0.0
    labelled = 0
    with torch.no_grad():
        for offset in range(0, len(rows), batch_size):
            batch = _to_device(collate_rows(rows[offset : offset + batch_size], pad_token_id, packed=False), device)
            loss_total += labelled_loss_sum(model, batch).item()
            labelled += sum(row.label_count for row in rows[offset : offset + batch_size])
    model.train()
    loss_total, labelled = processes.sum_values([loss_total, labelled], device)
    return loss_total / labelled


def record_validation_loss(state: TrainingState, loss: float) -> None:
    """Count evaluations since the best validation loss; only a strictly lower loss is a new best."""
    state.validation_losses.append(loss)
    if state.best_validation_loss is None or loss < state.best_validation_loss:
        state.best_validation_loss = loss
        state.evaluations_without_improvement = 0
    else:
        state.evaluations_without_improvement += 1


def _make_optimizer(parameters: list[torch.nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    """Return AdamW, fused into one kernel per step where torch offers it (CUDA, and CPU since torch 2.4)."""
    try:
        return torch.optim.AdamW(parameters, lr=learning_rate, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(parameters, lr=learning_rate)


def _make_scheduler(optimizer: torch.optim.Optimizer, name: str, warmup_steps: int, total_steps: int) -> Any:
    from transformers import get_scheduler

    # "constant" warms up like the others and then holds the learning rate.
    scheduler_name = "constant_with_warmup" if name == "constant" else name
    return get_scheduler(scheduler_name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)


def run_finetune(job: FinetuneJob, device_choice: DeviceChoice, events: EventWriter, cancel: CancellationFlag) -> None:
    """Train a LoRA adapter; under torchrun, as one of several data-parallel processes."""
    processes, device_choice = join(device_choice)
    try:
        _run_finetune(job, device_choice, events, cancel, processes)
    finally:
        processes.close()


def _run_finetune(job: FinetuneJob, device_choice: DeviceChoice, events: EventWriter, cancel: CancellationFlag, processes: ProcessGroup) -> None:
    section = job.finetune
    hyperparameters = section.hyperparameters
    device = device_choice.device
    work_dir = Path(job.workDir)
    output_dir = Path(section.outputDir)
    job_start = time.monotonic()
    _set_seed(hyperparameters.seed)

    tokenizer, base_model = load_base_model(
        Path(job.baseModel.path), device, device_choice.dtype, load_in_4bit=hyperparameters.quantization == "4bit"
    )
    conversations = read_conversations(Path(section.datasetPath))
    tokenized = tokenize_dataset(tokenizer, conversations, hyperparameters.maxSeqLength)
    if tokenized.truncated_lines or tokenized.dropped_lines:
        events.log(
            "warning" if tokenized.dropped_lines else "info",
            f"maxSeqLength={hyperparameters.maxSeqLength}: cut prompt tokens from the left of "
            f"{len(tokenized.truncated_lines)} examples (lines {tokenized.truncated_lines[:20]}) and skipped "
            f"{len(tokenized.dropped_lines)} whose last assistant turn alone is longer (lines {tokenized.dropped_lines[:20]})",
        )
    training_examples, validation_examples = split_validation(
        tokenized.examples, hyperparameters.validationFraction, hyperparameters.seed
    )
    if hyperparameters.packing:
        rows = pack_rows(training_examples, hyperparameters.maxSeqLength)
    else:
        rows = single_rows(training_examples)
    validation_rows = single_rows(validation_examples)
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    plan = TrainingPlan(
        examples=len(rows),
        batch_size=hyperparameters.batchSize,
        gradient_accumulation=hyperparameters.gradientAccumulation,
        epochs=hyperparameters.epochs,
        max_steps=hyperparameters.maxSteps,
    )
    model = build_lora_model(base_model, hyperparameters, job.baseModel.id, plan.total_steps)
    # Flattened rows carry no padding. A model that cannot take segment attention gets padded batches.
    flatten = use_segment_attention(model.get_base_model())
    if device.type == "cpu":
        # CUDA's fused dropout kernel draws its numbers in parallel, so only CPUs gain from drawing fewer.
        use_sparse_dropout(model)
    trainable_parameters, total_parameters = model.get_nb_trainable_parameters()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = _make_optimizer(trainable, hyperparameters.learningRate)
    warmup_steps = math.ceil(hyperparameters.warmupRatio * plan.total_steps)
    scheduler = _make_scheduler(optimizer, hyperparameters.lrScheduler, warmup_steps, plan.total_steps)
    orthogonal_weight = model.peft_config["default"].orth_reg_weight if hyperparameters.adalora is not None else 0.0
    events.log(
        "info",
        f"training {trainable_parameters} of {total_parameters} parameters on {len(training_examples)} examples "
        f"in {len(rows)} rows ({'packed' if hyperparameters.packing else 'one example per row'}, "
        f"{'each micro-batch flattened into one unpadded row' if flatten else 'padded to the longest row'}), "
        f"{len(validation_examples)} held out for validation: "
        f"{plan.total_steps} steps, {plan.steps_per_epoch} per epoch, {warmup_steps} warmup",
    )
    if processes.distributed:
        events.log("info", f"data parallel over {processes.world_size} processes; each trains on its share of every step's rows")

    state = TrainingState()
    if section.resumeFrom is not None:
        state = _load_checkpoint(Path(section.resumeFrom), model, optimizer, hyperparameters)
        # The schedule is a pure function of the step, so replaying it restores the learning rate.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(state.step):
                scheduler.step()
        # NOTE: AdaLoRA's importance scores are not in the checkpoint, so a resumed AdaLoRA run
        # reallocates ranks from fresh scores.
        events.log("info", f"resumed from the checkpoint after step {state.step} of {plan.total_steps}")

    checkpoint_every_steps = hyperparameters.checkpointEverySteps or section.checkpointEverySteps
    shuffle_generator = torch.Generator().manual_seed(hyperparameters.seed)
    last_checkpoint = time.monotonic()
    stopped_early = False
    # Steps and seconds of this run only, for the ETA: a resumed run may be on other hardware.
    run_steps = 0
    run_seconds = 0.0
    model.train()

    def checkpoint_due() -> bool:
        if state.step >= plan.total_steps:
            return False
        if checkpoint_every_steps is not None and state.step % checkpoint_every_steps == 0:
            return True
        return section.checkpointEverySeconds is not None and time.monotonic() - last_checkpoint >= section.checkpointEverySeconds

    def evaluate_validation() -> None:
        loss = validation_loss(model, validation_rows, hyperparameters.batchSize, pad_token_id, device, processes)
        events.emit(MetricEvent(name="validationLoss", value=loss))
        record_validation_loss(state, loss)

    for epoch in range(plan.epochs_to_run):
        # Every epoch draws its order from the seeded generator, so a resumed run replays the same order.
        order = torch.randperm(len(rows), generator=shuffle_generator).tolist()
        micro_batches = [
            [rows[index] for index in order[offset : offset + plan.batch_size]]
            for offset in range(0, len(order), plan.batch_size)
        ]
        for group_start in range(0, len(micro_batches), plan.gradient_accumulation):
            if epoch * plan.steps_per_epoch + group_start // plan.gradient_accumulation < state.step:
                continue  # done before the checkpoint this run resumed from
            if state.step >= plan.total_steps:
                break
            if processes.any(cancel.requested, device):
                _stop_for_cancellation(model, optimizer, work_dir, state, plan, hyperparameters, events, cancel, processes)

            group = micro_batches[group_start : group_start + plan.gradient_accumulation]
            step_start = time.monotonic()
            step_rows = [row for batch in group for row in batch]
            labelled_tokens = sum(row.label_count for row in step_rows)
            mine = processes.share(step_rows)
            local_batches = [mine[offset : offset + plan.batch_size] for offset in range(0, len(mine), plan.batch_size)]
            # The orthogonality penalty depends on the weights only, so one process adds it once.
            local_loss, local_tokens = _train_step(
                model, local_batches, labelled_tokens, pad_token_id, device, hyperparameters.packing, flatten,
                orthogonal_weight if processes.is_main else 0.0,
            )
            processes.sum_gradients(trainable)
            loss_sum, token_sum = processes.sum_values([local_loss, local_tokens], device)
            loss, tokens = loss_sum / labelled_tokens, int(token_sum)
            torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
            learning_rate = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            if hyperparameters.adalora is not None:
                # AdaLoRA scores and prunes ranks between the step and zero_grad, as PEFT documents.
                model.base_model.update_and_allocate(state.step)
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            step_seconds = time.monotonic() - step_start

            state.step += 1
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss} at step {state.step}; lower learningRate (now {hyperparameters.learningRate})"
                )
            state.losses.append(loss)
            state.train_tokens += tokens
            state.training_seconds += step_seconds
            run_steps += 1
            run_seconds += step_seconds
            events.emit(
                ProgressEvent(
                    step=state.step,
                    totalSteps=plan.total_steps,
                    epoch=state.step / plan.steps_per_epoch,
                    loss=loss,
                    learningRate=learning_rate,
                    tokensPerSecond=tokens / step_seconds if step_seconds > 0 else 0.0,
                    # NOTE: the ETA counts training steps only, not validation or checkpoint saves.
                    etaSeconds=run_seconds / run_steps * (plan.total_steps - state.step),
                    cpuMemoryBytes=resident_memory_bytes(),
                    gpuMemoryBytes=gpu_memory_bytes(device),
                )
            )
            if validation_rows and hyperparameters.evalEverySteps and state.step % hyperparameters.evalEverySteps == 0:
                evaluate_validation()
                patience = hyperparameters.earlyStoppingPatience
                if patience is not None and state.evaluations_without_improvement >= patience:
                    events.log(
                        "info",
                        f"early stopping after step {state.step}: validation loss did not improve on "
                        f"{state.best_validation_loss:.4f} in {patience} evaluations (earlyStoppingPatience={patience})",
                    )
                    stopped_early = True
                    break
            if processes.is_main and checkpoint_due() and not cancel.requested:
                path = _save_checkpoint(model, optimizer, work_dir, state, plan, hyperparameters)
                events.emit(CheckpointEvent(step=state.step, path=str(path)))
                last_checkpoint = time.monotonic()
        if state.step >= plan.total_steps or stopped_early:
            break

    if processes.any(cancel.requested, device):
        # SIGTERM arrived during the last step. The contract still requires a checkpoint then.
        _stop_for_cancellation(model, optimizer, work_dir, state, plan, hyperparameters, events, cancel, processes)

    # The summary's validation loss is of the final weights, unless the last step just measured it.
    if validation_rows and not (hyperparameters.evalEverySteps and state.step % hyperparameters.evalEverySteps == 0):
        evaluate_validation()
    if not processes.is_main:
        return

    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(output_dir), save_embedding_layers=False)
    losses = state.losses
    summary = FinetuneSummary(
        steps=state.step,
        epochs=state.step / plan.steps_per_epoch,
        trainLoss=sum(losses[-TRAIN_LOSS_WINDOW:]) / len(losses[-TRAIN_LOSS_WINDOW:]),
        finalLoss=losses[-1],
        wallSeconds=time.monotonic() - job_start,
        tokensPerSecond=state.train_tokens / state.training_seconds if state.training_seconds > 0 else 0.0,
        peakMemoryBytes=peak_memory_bytes(device),
        trainableParameters=trainable_parameters,
        totalParameters=total_parameters,
        examples=len(training_examples),
        trainTokens=state.train_tokens,
        validationExamples=len(validation_examples),
        validationLoss=state.validation_losses[-1] if state.validation_losses else None,
        truncatedExamples=len(tokenized.truncated_lines),
        droppedExamples=len(tokenized.dropped_lines),
        stoppedEarly=stopped_early,
        processes=processes.world_size,
    )
    write_model_card(output_dir, job.baseModel.id, job.jobId, hyperparameters, summary)
    events.emit(ArtifactEvent(path=str(output_dir.resolve()), role="adapter"))
    events.emit(FinishedEvent(summary=summary))


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {name: value.to(device) if isinstance(value, torch.Tensor) else value for name, value in batch.items()}


def _train_step(
    model: Any,
    group: list[list[TrainingRow]],
    labelled_tokens: int,
    pad_token_id: int,
    device: torch.device,
    packed: bool,
    flatten: bool,
    orthogonal_weight: float,
) -> tuple[float, int]:
    """Run forward and backward over this process's micro-batches of one optimizer step.

    The loss is the mean over every labelled token of the step (`labelled_tokens`,
    counted over all processes), not the mean of per-batch means, so micro-batches with
    more assistant tokens weigh more, and gradient accumulation or a split across
    processes gives the same gradient as one large batch. AdaLoRA's orthogonality term
    (orthogonal_weight > 0) is added once. With `flatten` each micro-batch runs as one
    row without padding (batching.flatten_rows), otherwise padded to its longest row.
    Returns the sum of token losses and the count of non-padding tokens of these batches.
    """
    loss_total = 0.0
    tokens = 0
    for batch_rows in group:
        rows = flatten_rows(batch_rows) if flatten else collate_rows(batch_rows, pad_token_id, packed)
        batch = _to_device(rows, device)
        loss_sum = labelled_loss_sum(model, batch)
        (loss_sum / labelled_tokens).backward()
        loss_total += loss_sum.item()
        tokens += int(batch["tokens"].item())
    if orthogonal_weight > 0:
        (orthogonal_weight * adalora_orthogonal_penalty(model)).backward()
    return loss_total, tokens


def _stop_for_cancellation(
    model: Any,
    optimizer: torch.optim.Optimizer,
    work_dir: Path,
    state: TrainingState,
    plan: TrainingPlan,
    hyperparameters: Hyperparameters,
    events: EventWriter,
    cancel: CancellationFlag,
    processes: ProcessGroup,
) -> None:
    """Save a checkpoint (when a step has run; rank 0 only) and raise JobCancelled."""
    step = state.step
    signal_name = cancel.signal_name or "SIGTERM"
    if not processes.is_main:
        raise JobCancelled(f"{signal_name} received; stopped after step {step}")
    if step > 0:
        path = _save_checkpoint(model, optimizer, work_dir, state, plan, hyperparameters)
        events.emit(CheckpointEvent(step=step, path=str(path)))
        events.emit(ArtifactEvent(path=str(path), role="checkpoint"))
        raise JobCancelled(f"{signal_name} received; stopped after step {step} of {plan.total_steps} and saved a checkpoint")
    raise JobCancelled(f"{signal_name} received before the first training step; no checkpoint saved")
