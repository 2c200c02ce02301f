"""Training data: reading the JSONL data set, chat rendering, loss labels, batching.

Prompt/completion and messages lines are rendered with the chat template and only the
assistant tokens carry loss. A text line is tokenized as it is, followed by the
end-of-sequence token, and every token carries loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from jinja2 import TemplateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import DataError

# Label value that torch's cross-entropy and transformers treat as "no loss here".
IGNORE_INDEX = -100


class _LineModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatMessage(_LineModel):
    role: Literal["system", "user", "assistant"]
    content: str


class PromptCompletionLine(_LineModel):
    prompt: str = Field(min_length=1)
    completion: str = Field(min_length=1)


class MessagesLine(_LineModel):
    messages: list[ChatMessage] = Field(min_length=1)


class TextLine(_LineModel):
    text: str = Field(min_length=1)


@dataclass(frozen=True)
class Conversation:
    line_number: int
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class PlainText:
    line_number: int
    text: str


@dataclass(frozen=True)
class TokenizedExample:
    line_number: int
    input_ids: list[int]
    labels: list[int]
    # True when tokens were cut to fit maxSeqLength: prompt tokens from the left, plain text from the end.
    truncated: bool = False

    @property
    def label_count(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def read_jsonl_objects(path: Path) -> list[tuple[int, Any]]:
    """Return (line number, parsed JSON) for every non-blank line, raising DataError on bad JSON."""
    try:
        # utf-8-sig drops a byte order mark, which the server's validation accepts.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as error:
        raise DataError(f"data file {str(path)!r} not found; the runner must download it before starting the worker") from error
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read data file {str(path)!r} as UTF-8 text: {error}") from error

    objects = []
    # Split on newlines only: str.splitlines() also breaks on U+2028, U+0085 and others,
    # which JSON strings may contain unescaped.
    for line_number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            objects.append((line_number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{path.name} line {line_number}: invalid JSON ({error.msg} at column {error.colno})") from error
    if not objects:
        raise DataError(f"data file {str(path)!r} contains no JSON lines")
    return objects


def parse_conversation(line_number: int, value: Any, file_name: str) -> Conversation | PlainText:
    """Turn one data set line into chat messages or plain text, raising DataError when it fits no line form."""
    if isinstance(value, dict) and "text" in value:
        try:
            text_line = TextLine.model_validate(value)
        except ValidationError as error:
            raise DataError(f"{file_name} line {line_number}: invalid text line: {_brief(error)}") from error
        return PlainText(line_number, text_line.text)

    if isinstance(value, dict) and "messages" in value:
        try:
            line = MessagesLine.model_validate(value)
        except ValidationError as error:
            raise DataError(f"{file_name} line {line_number}: invalid messages line: {_brief(error)}") from error
        if not any(message.role == "assistant" for message in line.messages):
            raise DataError(f"{file_name} line {line_number}: messages contain no assistant turn, so there is nothing to train on")
        return Conversation(line_number, [message.model_dump() for message in line.messages])

    try:
        pair = PromptCompletionLine.model_validate(value)
    except ValidationError as error:
        raise DataError(
            f"{file_name} line {line_number}: expected {{\"prompt\": str, \"completion\": str}}, "
            f"{{\"messages\": [...]}} or {{\"text\": str}}: {_brief(error)}"
        ) from error
    return Conversation(
        line_number,
        [{"role": "user", "content": pair.prompt}, {"role": "assistant", "content": pair.completion}],
    )


def _brief(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'line'}: {item['msg']}" for item in error.errors()
    )


def read_conversations(path: Path) -> list[Conversation | PlainText]:
    return [parse_conversation(number, value, path.name) for number, value in read_jsonl_objects(path)]


def render_with_assistant_spans(tokenizer: Any, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Render messages with the chat template and return the text and each assistant turn's character span.

    A span starts where the template's generation prompt for that turn ends. It stops
    at the end of the turn's rendering, less trailing whitespace. So it covers the
    content and the end-of-turn token (`<|im_end|>` in ChatML), but not the line break
    between turns. Spans are found by rendering each prefix of the conversation, which
    works when the template renders a prefix of the messages as a prefix of the text,
    as ChatML templates do. Any other template raises DataError.
    """
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        through = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False).rstrip()
        if not (text.startswith(through) and through.startswith(before)):
            raise DataError(
                "the chat template does not render the conversation prefix by prefix, so assistant tokens "
                f"cannot be located (assistant message {index})"
            )
        spans.append((len(before), len(through)))
    return text, spans


def _prompt_head_end(tokenizer: Any, messages: list[dict[str, str]], text: str) -> int:
    """Return the character offset where the first user message's content starts.

    Everything before it (the template's leading special tokens, a system turn, the
    user turn's header) is the head that left truncation keeps. Returns 0 when the
    conversation has no user message or its content cannot be located.
    """
    for index, message in enumerate(messages):
        if message["role"] != "user" or not message["content"]:
            continue
        turn_start = len(tokenizer.apply_chat_template(messages[:index], tokenize=False)) if index > 0 else 0
        found = text.find(message["content"], turn_start)
        return max(found, 0)
    return 0


def tokenize_conversation(tokenizer: Any, conversation: Conversation, max_seq_length: int) -> TokenizedExample | None:
    """Tokenize a conversation, labelling only assistant tokens, cut to at most max_seq_length tokens.

    A token is labelled when its first character lies inside an assistant span, so a
    token that merges the generation prompt with the first content character stays
    unlabelled. Labels are aligned with input_ids; the loss shifts them.

    A conversation longer than max_seq_length loses prompt tokens from the left: it keeps
    the head (template tokens, system turn and user header before the first user
    content) and the last assistant turn from its header to its end-of-turn token, and
    fills the rest with the latest prompt tokens. When head and last turn do not fit
    together, only the last max_seq_length tokens are kept. Returns None when the last
    assistant turn alone is longer than max_seq_length, because it cannot be trained on whole.
    """
    try:
        text, spans = render_with_assistant_spans(tokenizer, conversation.messages)
        last_assistant = max(index for index, message in enumerate(conversation.messages) if message["role"] == "assistant")
        completion_start = (
            len(tokenizer.apply_chat_template(conversation.messages[:last_assistant], tokenize=False))
            if last_assistant > 0
            else 0
        )
        head_end = _prompt_head_end(tokenizer, conversation.messages, text)
    except TemplateError as error:
        raise DataError(f"line {conversation.line_number}: the chat template rejected the messages: {error}") from error
    except DataError as error:
        raise DataError(f"line {conversation.line_number}: {error}") from error

    # The rendered text already contains the template's special tokens, so the
    # tokenizer must not add a second BOS.
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoding["input_ids"])
    starts = [start for start, _end in encoding["offset_mapping"]]
    labels = []
    for token_id, start in zip(input_ids, starts):
        in_assistant_turn = any(span_start <= start < span_end for span_start, span_end in spans)
        labels.append(token_id if in_assistant_turn else IGNORE_INDEX)

    length = len(input_ids)
    if length <= max_seq_length:
        return TokenizedExample(conversation.line_number, input_ids, labels)

    completion_tokens = sum(start >= completion_start for start in starts)
    if completion_tokens > max_seq_length:
        return None
    head_tokens = sum(start < head_end for start in starts)
    if head_tokens + completion_tokens > max_seq_length:
        head_tokens = 0
    keep = list(range(head_tokens)) + list(range(length - (max_seq_length - head_tokens), length))
    return TokenizedExample(
        conversation.line_number,
        [input_ids[index] for index in keep],
        [labels[index] for index in keep],
        truncated=True,
    )


def tokenize_text(tokenizer: Any, example: PlainText, max_seq_length: int) -> TokenizedExample:
    """Tokenize plain text plus the end-of-sequence token, labelling every token, truncated to max_seq_length.

    The end-of-sequence token teaches the model where a document stops. No BOS is added,
    matching the chat path, which relies on the template's own special tokens.
    """
    input_ids = list(tokenizer(example.text, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is None:
        raise DataError("the tokenizer has no end-of-sequence token, so text examples cannot be terminated")
    input_ids = input_ids + [tokenizer.eos_token_id]
    truncated = len(input_ids) > max_seq_length
    input_ids = input_ids[:max_seq_length]
    return TokenizedExample(example.line_number, input_ids, list(input_ids), truncated=truncated)


@dataclass(frozen=True)
class TokenizedDataset:
    examples: list[TokenizedExample]
    # Line numbers of conversations whose last assistant turn alone exceeds maxSeqLength.
    dropped_lines: list[int]
    # Line numbers of conversations that lost prompt tokens from the left.
    truncated_lines: list[int]


def tokenize_dataset(tokenizer: Any, conversations: list[Conversation | PlainText], max_seq_length: int) -> TokenizedDataset:
    """Tokenize every conversation, cutting long prompts from the left.

    Raises DataError when every example was dropped because its last assistant turn
    alone is longer than max_seq_length.
    """
    examples = []
    dropped_lines = []
    truncated_lines = []
    for conversation in conversations:
        if isinstance(conversation, PlainText):
            example = tokenize_text(tokenizer, conversation, max_seq_length)
        else:
            example = tokenize_conversation(tokenizer, conversation, max_seq_length)
        if example is None:
            dropped_lines.append(conversation.line_number)
            continue
        if example.truncated:
            truncated_lines.append(conversation.line_number)
        examples.append(example)
    if not examples:
        raise DataError(
            f"no example's last assistant turn fits within maxSeqLength={max_seq_length} tokens; "
            "raise maxSeqLength or shorten the answers"
        )
    return TokenizedDataset(examples, dropped_lines, truncated_lines)


def collate(examples: list[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a batch to its longest example; padding gets attention 0 and label IGNORE_INDEX."""
    length = max(len(example.input_ids) for example in examples)
    input_ids = torch.full((len(examples), length), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), length), dtype=torch.long)
    for row, example in enumerate(examples):
        size = len(example.input_ids)
        input_ids[row, :size] = torch.tensor(example.input_ids, dtype=torch.long)
        labels[row, :size] = torch.tensor(example.labels, dtype=torch.long)
        attention_mask[row, :size] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
