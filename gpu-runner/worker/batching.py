"""Training rows: one example per row, or several packed into one row, and their batches.

A packed row concatenates examples and restarts position_ids at 0 for each of them.
With attention_mask=None, transformers (masking_utils.find_packed_sequence_indices,
5.x) reads the restarts as sequence boundaries and builds a block-diagonal causal
mask, so no token attends to another example and every example sees the positions
it would see alone. Labels stay per example, and the first token of each example has
no label, so no loss term predicts one example from the end of another.

The training step does not pad at all where the model takes segment attention
(kernels.py): flatten_rows joins a micro-batch's rows into a single row and lists each
example's token span. collate_rows pads for every other case, and for validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .data import IGNORE_INDEX, TokenizedExample


@dataclass(frozen=True)
class TrainingRow:
    input_ids: list[int]
    labels: list[int]
    position_ids: list[int]
    example_count: int

    @property
    def label_count(self) -> int:
        # Position t predicts labels[t + 1], so the first label of a row never counts.
        return sum(label != IGNORE_INDEX for label in self.labels[1:])


def single_rows(examples: list[TokenizedExample]) -> list[TrainingRow]:
    return [
        TrainingRow(example.input_ids, example.labels, list(range(len(example.input_ids))), 1) for example in examples
    ]


def pack_rows(examples: list[TokenizedExample], max_seq_length: int) -> list[TrainingRow]:
    """Pack examples into rows of at most max_seq_length tokens, first fit by decreasing length.

    The result depends only on the examples' order and lengths, so a resumed run rebuilds
    the same rows. Each example must already fit in max_seq_length tokens.
    """
    order = sorted(range(len(examples)), key=lambda index: -len(examples[index].input_ids))
    bins: list[list[int]] = []
    free: list[int] = []
    for index in order:
        size = len(examples[index].input_ids)
        if size > max_seq_length:
            raise ValueError(f"example of {size} tokens exceeds max_seq_length={max_seq_length}; tokenize with truncation first")
        for bin_index, space in enumerate(free):
            if size <= space:
                bins[bin_index].append(index)
                free[bin_index] -= size
                break
        else:
            bins.append([index])
            free.append(max_seq_length - size)

    rows = []
    for members in bins:
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for index in members:
            example = examples[index]
            input_ids += example.input_ids
            # The first token of an example is never a target, also not of the previous example's last position.
            labels += [IGNORE_INDEX] + example.labels[1:]
            position_ids += list(range(len(example.input_ids)))
        rows.append(TrainingRow(input_ids, labels, position_ids, len(members)))
    return rows


def collate_rows(rows: list[TrainingRow], pad_token_id: int, packed: bool) -> dict[str, torch.Tensor | None]:
    """Right-pad rows to the longest one; padding gets label IGNORE_INDEX.

    Unpacked rows get an attention_mask that hides padding. Packed rows get position_ids
    and attention_mask None. Their padding gets positions 0, 1, … and so forms one more
    sequence of its own, which no real token attends to.
    `tokens` is the count of non-padding tokens.
    """
    length = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    position_ids = torch.arange(length, dtype=torch.long).repeat(len(rows), 1)
    for index, row in enumerate(rows):
        size = len(row.input_ids)
        input_ids[index, :size] = torch.tensor(row.input_ids, dtype=torch.long)
        labels[index, :size] = torch.tensor(row.labels, dtype=torch.long)
        attention_mask[index, :size] = 1
        position_ids[index, :size] = torch.tensor(row.position_ids, dtype=torch.long)
        position_ids[index, size:] = torch.arange(length - size, dtype=torch.long)
    tokens = torch.tensor(sum(len(row.input_ids) for row in rows))
    if packed:
        return {"input_ids": input_ids, "attention_mask": None, "position_ids": position_ids, "labels": labels, "tokens": tokens}
    return {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": None, "labels": labels, "tokens": tokens}


def flatten_rows(rows: list[TrainingRow]) -> dict[str, Any]:
    """Concatenate rows into one row of batch size 1, with no padding.

    Every example becomes a segment, and its position ids restart at 0, as in packed rows.
    Its first label is IGNORE_INDEX, so the previous example's last token predicts nothing.
    `segment_bounds` lists each segment's (start, end) token offsets for the segment
    attention of kernels.py, and `tokens` counts the tokens, as in collate_rows. The linear
    layers then see exactly the real tokens of the batch.
    """
    input_ids: list[int] = []
    labels: list[int] = []
    position_ids: list[int] = []
    segment_bounds: list[tuple[int, int]] = []
    for row in rows:
        offset = len(input_ids)
        starts = [index for index, position in enumerate(row.position_ids) if position == 0]
        if not starts or starts[0] != 0:
            raise ValueError(f"a training row must start an example at position 0, not at {row.position_ids[:1]}")
        ends = starts[1:] + [len(row.input_ids)]
        segment_bounds += [(offset + start, offset + end) for start, end in zip(starts, ends)]
        row_labels = list(row.labels)
        for start in starts:
            row_labels[start] = IGNORE_INDEX
        input_ids += row.input_ids
        labels += row_labels
        position_ids += row.position_ids
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "attention_mask": None,
        "position_ids": torch.tensor([position_ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "tokens": torch.tensor(len(input_ids)),
        "segment_bounds": segment_bounds,
    }
