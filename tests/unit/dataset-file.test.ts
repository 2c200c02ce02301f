import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { parseDataset, validateDataset, type ColumnMapping, type FileType } from '../../server/formats/dataset-file';
import { chatTemplateOf, createTokenCounter, memoizeCounter, specialTokensOf } from '../../server/formats/token-counter';

const FIXTURES = 'tests/fixtures/datasets';
const read = (name: string) => new Uint8Array(fs.readFileSync(path.join(FIXTURES, name)));

// The real SmolLM2 tokenizer and chat template, prepared by scripts/test.sh before vitest runs.
const MODEL = '.data/models/smollm2-135m-instruct';
function smolCounter() {
  const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'tokenizer_config.json'), 'utf8'));
  const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(path.join(MODEL, 'tokenizer.json'), 'utf8')), config);
  const templateFile = fs.existsSync(path.join(MODEL, 'chat_template.jinja')) ? fs.readFileSync(path.join(MODEL, 'chat_template.jinja'), 'utf8') : null;
  return createTokenCounter(tokenizer, chatTemplateOf(config, templateFile)!, specialTokensOf(config));
}

// One fixture per rule and the exact problem it must produce.
const errorCases: { file: string; line: number | null; message: string }[] = [
  { file: 'invalid-utf8.jsonl', line: 4, message: 'invalid UTF-8; save the file as UTF-8' },
  { file: 'invalid-json.jsonl', line: 7, message: 'invalid JSON; each line must be one complete JSON object (check quotes, commas and brackets)' },
  { file: 'not-an-object.jsonl', line: 3, message: 'not a JSON object (got array); each line must be an object such as {"prompt": …, "completion": …}' },
  { file: 'mixed-schemas.jsonl', line: 5, message: 'mixed schemas: this line is messages but the file started as prompt-completion; use one format per file' },
  { file: 'missing-field.jsonl', line: 3, message: 'missing key `completion`; a prompt-completion line needs both `prompt` and `completion`' },
  { file: 'empty-field.jsonl', line: 2, message: '`completion` is empty' },
  { file: 'non-string.jsonl', line: 4, message: '`prompt` must be a string, got number' },
  { file: 'unknown-key.jsonl', line: 6, message: 'unknown key `id`; a prompt-completion line has only `prompt` and `completion`' },
  { file: 'renamed-key.jsonl', line: 6, message: 'unknown key `answer` and missing key `completion`; a prompt-completion line has only `prompt` and `completion` (rename `answer` to `completion`?)' },
  { file: 'unknown-role.jsonl', line: 2, message: 'messages[0]: unknown role "robot"; use system, user or assistant' },
  { file: 'non-string-content.jsonl', line: 8, message: 'messages[0].content must be a string, got array' },
  { file: 'no-assistant-turn.jsonl', line: 9, message: 'conversation has no assistant turn to learn from' },
  { file: 'not-ending-on-assistant.jsonl', line: 10, message: 'conversation must end with an assistant turn' },
  { file: 'empty-line.jsonl', line: 7, message: 'empty line; remove it or put one JSON object on it' },
  { file: 'too-few.jsonl', line: null, message: 'only 4 usable examples; at least 10 are needed to fine-tune' },
  { file: 'empty.jsonl', line: null, message: 'the file is empty; put one example per line, at least 10 of them' },
];

describe('data set validation rules', () => {
  for (const { file, line, message } of errorCases) {
    it(`rejects ${file}`, () => {
      const report = validateDataset(read(file));
      expect(report.valid).toBe(false);
      expect(report.errorCount).toBe(1);
      expect(report.errors).toEqual([{ line, message }]);
    });
  }

  for (const file of ['bom.jsonl', 'crlf.jsonl', 'trailing-blank-lines.jsonl']) {
    it(`accepts ${file}`, () => {
      const report = validateDataset(read(file));
      expect(report.errors).toEqual([]);
      expect(report.valid).toBe(true);
      expect(report.examples).toBe(12);
      expect(report.format).toBe('prompt-completion');
    });
  }

  it('keeps CRLF out of the example text', () => {
    const { examples } = parseDataset(read('crlf.jsonl'));
    expect(examples[0]).toEqual({ line: 1, example: { prompt: 'What is 1 plus 1?', completion: '1 plus 1 is 2.' } });
  });

  it('lists the first 50 problems and counts all 80', () => {
    const report = validateDataset(read('too-many-errors.jsonl'));
    expect(report.errors).toHaveLength(50);
    expect(report.errors[49]).toEqual({ line: 50, message: 'invalid JSON; each line must be one complete JSON object (check quotes, commas and brackets)' });
    expect(report.errorCount).toBe(80);
  });

  it('warns about each duplicate with its first line', () => {
    const report = validateDataset(read('duplicates.jsonl'));
    expect(report.valid).toBe(true);
    expect(report.duplicates).toBe(2);
    expect(report.lineWarnings).toEqual([{ line: 12, message: 'duplicate of line 2' }, { line: 13, message: 'duplicate of line 5' }]);
    expect(report.warnings).toEqual(['2 duplicate examples; they are kept and weigh more in training unless cleaning removes them']);
  });

  it('accepts text and messages formats', () => {
    expect(validateDataset(read('text.jsonl'))).toMatchObject({ valid: true, format: 'text', examples: 12 });
    expect(validateDataset(read('messages.jsonl'))).toMatchObject({ valid: true, format: 'messages', examples: 12 });
  });
});

describe('token counts with the SmolLM2 tokenizer', () => {
  const counter = smolCounter();

  it('warns about an example over the maximum sequence length', () => {
    const report = validateDataset(read('too-long.jsonl'), { counter, maxSeqLength: 64 });
    expect(report.valid).toBe(true);
    expect(report.overLong).toBe(1);
    expect(report.lineWarnings).toEqual([{ line: 11, message: 'example is 197 tokens, longer than the maximum sequence length of 64; training cuts it to 64' }]);
  });

  it('counts the chat-rendered example as the worker does', () => {
    // 41 tokens: SmolLM2's template adds its default system turn and the ChatML markers
    // (checked against transformers' apply_chat_template on the same folder; 197 likewise).
    expect(counter.example({ prompt: 'What is the capital of France?', completion: 'Paris.' })).toBe(41);
    expect(counter.example({ text: 'Hello world' })).toBe(3);
  });

  it('memoized counter counts each text once', () => {
    const calls: string[] = [];
    const memoized = memoizeCounter({ text: (t) => (calls.push(t), t.length), example: (e) => (calls.push(JSON.stringify(e)), 1) });
    expect(memoized.text('abc') + memoized.text('abc')).toBe(6);
    expect(memoized.example({ text: 'x' }) + memoized.example({ text: 'x' })).toBe(2);
    expect(calls).toEqual(['abc', '{"text":"x"}']);
  });

  it('summarizes tokens per field', () => {
    const report = validateDataset(read('text.jsonl'), { counter, maxSeqLength: 512 });
    expect(Object.keys(report.tokens!)).toEqual(['text', 'total']);
    expect(report.tokens!.total!.max).toBe(report.tokens!.text!.max + 1);
    expect(report.tokens!.text!.p50).toBeLessThanOrEqual(report.tokens!.text!.p95);
  });
});

describe('CSV and TSV with a column mapping', () => {
  const csv = (file: string, mapping: ColumnMapping, fileType: FileType = 'csv') => parseDataset(read(file), { fileType, mapping });

  it('parses quoted fields with commas, line breaks and doubled quotes', () => {
    const { report, examples } = csv('mapping.csv', { prompt: 'question', completion: 'answer' });
    expect(report.errors).toEqual([]);
    expect(report.examples).toBe(12);
    expect(examples[1]).toEqual({ line: 4, example: { prompt: 'Define term 2, please', completion: 'Term 2 is "quoted",\nand spans two lines.' } });
  });

  it('maps a system column to a conversation', () => {
    const { report, examples } = csv('mapping.csv', { prompt: 'question', completion: 'answer', system: 'instructions' });
    expect(report.format).toBe('messages');
    expect(examples[0]!.example).toEqual({ messages: [
      { role: 'system', content: 'Answer briefly.' },
      { role: 'user', content: 'Define term 1, please' },
      { role: 'assistant', content: 'Term 1 is "quoted",\nand spans two lines.' },
    ] });
  });

  it('maps a text column', () => {
    const { report, examples } = csv('mapping.csv', { text: 'answer' });
    expect(report.format).toBe('text');
    expect(examples[11]!.example).toEqual({ text: 'Term 12 is "quoted",\nand spans two lines.' });
  });

  it('reads TSV', () => {
    const { report, examples } = csv('mapping.tsv', { prompt: 'question', completion: 'answer' }, 'tsv');
    expect(report.valid).toBe(true);
    expect(examples[2]).toEqual({ line: 4, example: { prompt: 'What is 3?', completion: '3, a "number"' } });
  });

  it('names a mapped column missing from the header', () => {
    expect(csv('mapping.csv', { prompt: 'question', completion: 'reply' }).report.errors).toEqual([
      { line: 1, message: 'column "reply" (mapped to completion) is not in the header; the columns are: id, question, answer, instructions' },
    ]);
  });

  it('rejects a mapping without a completion', () => {
    expect(csv('mapping.csv', { prompt: 'question' }).report.errors).toEqual([{ line: 1, message: 'map both a prompt column and a completion column, or a text column' }]);
  });

  it('names a row with the wrong field count', () => {
    expect(csv('csv-field-count.csv', { prompt: 'question', completion: 'answer' }).report.errors).toEqual([
      { line: 6, message: 'row has 3 fields but the header has 2; quote fields that contain the delimiter' },
    ]);
  });

  it('names the line where an unclosed quote opens', () => {
    const { report } = csv('csv-unclosed-quote.csv', { prompt: 'question', completion: 'answer' });
    expect(report.valid).toBe(false);
    expect(report.errors).toEqual([{ line: 8, message: 'invalid CSV: a quoted field is not closed; close it with a double quote' }]);
  });
});
