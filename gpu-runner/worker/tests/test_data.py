"""Data set parsing, assistant-only labels and collation, with the real SmolLM2 tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from worker.data import (
    IGNORE_INDEX,
    Conversation,
    PlainText,
    collate,
    read_conversations,
    tokenize_conversation,
    tokenize_dataset,
)
from worker.errors import DataError

MULTI_TURN = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Double 3."},
    {"role": "assistant", "content": "6"},
    {"role": "user", "content": "And triple it?"},
    {"role": "assistant", "content": "9, because\n3 times 3 is 9."},
]


def labelled_runs(input_ids: list[int], labels: list[int]) -> list[list[int]]:
    """Return the maximal runs of consecutive labelled token ids."""
    runs: list[list[int]] = []
    previous_labelled = False
    for token_id, label in zip(input_ids, labels):
        labelled = label != IGNORE_INDEX
        if labelled:
            assert label == token_id
            if not previous_labelled:
                runs.append([])
            runs[-1].append(token_id)
        previous_labelled = labelled
    return runs


def test_labels_cover_only_assistant_turns(tiny_tokenizer: Any) -> None:
    example = tokenize_conversation(tiny_tokenizer, Conversation(1, MULTI_TURN), max_seq_length=512)

    runs = labelled_runs(example.input_ids, example.labels)
    decoded = [tiny_tokenizer.decode(run) for run in runs]
    assert decoded == ["6<|im_end|>", "9, because\n3 times 3 is 9.<|im_end|>"]


def test_unlabelled_tokens_are_prompt_and_template(tiny_tokenizer: Any) -> None:
    example = tokenize_conversation(tiny_tokenizer, Conversation(1, MULTI_TURN), max_seq_length=512)

    unlabelled = [token for token, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX]
    text = tiny_tokenizer.decode(unlabelled)
    assert "Be brief." in text
    assert "Double 3." in text
    assert "And triple it?" in text
    assert text.count("<|im_start|>assistant\n") == 2
    assert "9, because" not in text


def test_prompt_completion_renders_user_and_assistant(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"prompt": "Name a colour.", "completion": "Blue."}) + "\n", encoding="utf-8")
    [conversation] = read_conversations(path)
    assert conversation.messages == [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ]

    example = tokenize_conversation(tiny_tokenizer, conversation, max_seq_length=512)
    runs = labelled_runs(example.input_ids, example.labels)
    assert [tiny_tokenizer.decode(run) for run in runs] == ["Blue.<|im_end|>"]


def test_example_dropped_only_when_answer_too_long(tiny_tokenizer: Any) -> None:
    long_prompt = Conversation(1, [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}])
    long_answer = Conversation(2, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "word " * 200}])
    short = Conversation(3, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])

    tokenized = tokenize_dataset(tiny_tokenizer, [long_prompt, long_answer, short], max_seq_length=64)

    assert tokenized.dropped_lines == [2]
    assert tokenized.truncated_lines == [1]
    assert [example.line_number for example in tokenized.examples] == [1, 3]
    assert len(tokenized.examples[0].input_ids) == 64
    with pytest.raises(DataError, match="maxSeqLength=64"):
        tokenize_dataset(tiny_tokenizer, [long_answer], max_seq_length=64)


def test_collate_pads_right_and_masks_padding(tiny_tokenizer: Any) -> None:
    conversations = [
        Conversation(1, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]),
        Conversation(2, MULTI_TURN),
    ]
    examples = tokenize_dataset(tiny_tokenizer, conversations, max_seq_length=512).examples
    pad = tiny_tokenizer.pad_token_id

    batch = collate(examples, pad_token_id=pad)

    short, long = (len(example.input_ids) for example in examples)
    assert batch["input_ids"].shape == (2, long)
    assert batch["attention_mask"][0].tolist() == [1] * short + [0] * (long - short)
    assert batch["attention_mask"][1].tolist() == [1] * long
    assert batch["input_ids"][0, :short].tolist() == examples[0].input_ids
    assert torch.all(batch["input_ids"][0, short:] == pad)
    assert batch["labels"][0, :short].tolist() == examples[0].labels
    assert torch.all(batch["labels"][0, short:] == IGNORE_INDEX)
    assert batch["labels"][1].tolist() == examples[1].labels


MALFORMED_LINES: dict[str, str] = {
    "not json": '{"prompt": "a", "completion": ',
    "array instead of object": '["prompt", "completion"]',
    "missing completion": '{"prompt": "a"}',
    "empty completion": '{"prompt": "a", "completion": ""}',
    "completion not a string": '{"prompt": "a", "completion": 3}',
    "unknown field": '{"prompt": "a", "completion": "b", "weight": 2}',
    "unknown role": '{"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]}',
    "no assistant turn": '{"messages": [{"role": "user", "content": "x"}]}',
    "empty messages": '{"messages": []}',
    "empty text": '{"text": ""}',
    "text not a string": '{"text": ["a"]}',
    "text with an unknown field": '{"text": "a", "source": "web"}',
}


@pytest.mark.parametrize("case", sorted(MALFORMED_LINES))
def test_malformed_line_raises_data_error(case: str, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    good = json.dumps({"prompt": "a", "completion": "b"})
    path.write_text(f"{good}\n\n{MALFORMED_LINES[case]}\n", encoding="utf-8")

    with pytest.raises(DataError, match="line 3"):
        read_conversations(path)


def test_missing_data_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_conversations(tmp_path / "absent.jsonl")


def test_empty_data_file_raises_data_error(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(DataError, match="no JSON lines"):
        read_conversations(path)


def test_text_line_labels_every_token_and_eos(tiny_tokenizer: Any, tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "The pump ran at 120 kPa."}) + "\n", encoding="utf-8")

    [text] = read_conversations(path)
    tokenized = tokenize_dataset(tiny_tokenizer, [text], max_seq_length=512)
    examples, dropped = tokenized.examples, tokenized.dropped_lines

    expected = tiny_tokenizer("The pump ran at 120 kPa.", add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert text == PlainText(1, "The pump ran at 120 kPa.")
    assert dropped == []
    assert examples[0].input_ids == expected
    assert examples[0].labels == expected


def test_text_line_truncates_to_max_seq_length(tiny_tokenizer: Any) -> None:
    tokenized = tokenize_dataset(tiny_tokenizer, [PlainText(1, "one two three four five six seven eight")], max_seq_length=4)
    [example] = tokenized.examples
    assert tokenized.truncated_lines == [1]
    assert len(example.input_ids) == 4
    assert example.labels == example.input_ids
    assert tiny_tokenizer.eos_token_id not in example.input_ids


def test_prompt_lines_keep_masking_beside_text(tiny_tokenizer: Any) -> None:
    chat = Conversation(1, [{"role": "user", "content": "Double 3."}, {"role": "assistant", "content": "6"}])
    examples = tokenize_dataset(tiny_tokenizer, [chat, PlainText(2, "plain words")], max_seq_length=512).examples

    chat_example, text_example = examples
    assert IGNORE_INDEX in chat_example.labels
    assert chat_example.label_count < len(chat_example.input_ids)
    assert IGNORE_INDEX not in text_example.labels


def test_worker_trains_on_text_lines(tiny_base: Path, tmp_path: Path) -> None:
    from .helpers import finetune_spec, run_worker_job, write_jsonl

    rows = [{"text": f"Maintenance log {i}: the pump ran at {100 + i} kPa and was inspected."} for i in range(8)]
    dataset = write_jsonl(tmp_path / "data.jsonl", rows)
    run = run_worker_job(finetune_spec(tmp_path, tiny_base, dataset, maxSteps=2), tmp_path / "spec.json")

    assert run.returncode == 0, run.stderr[-2000:]
    [finished] = run.of_type("finished")
    assert finished.summary.examples == 8
    assert finished.summary.trainTokens > 0
