/**
 * Parsing and validation of a fine-tuning data set file.
 *
 * Accepted files:
 * - JSONL, one object per line: {"prompt": str, "completion": str},
 *   {"messages": [{"role": "system"|"user"|"assistant", "content": str}, …]} or {"text": str}.
 * - CSV or TSV with a header row, and a column mapping that names the prompt and completion
 *   columns (optionally a system column), or a text column.
 *
 * Pure: token counting is injected, and the CSV parser is the `csv-parse` package, so this
 * module imports nothing of ours.
 */
import { parse as parseCsv, CsvError } from 'csv-parse/sync';

export type DatasetFormat = 'prompt-completion' | 'messages' | 'text';
export type FileType = 'jsonl' | 'csv' | 'tsv';

export interface ChatMessage { role: string; content: string }
export type Example =
  | { prompt: string; completion: string }
  | { messages: ChatMessage[] }
  | { text: string };

export interface ColumnMapping {
  prompt?: string;
  completion?: string;
  text?: string;
  system?: string;
}

export interface DatasetProblem {
  // 1-based line number where the example starts, or null for a problem of the whole file.
  line: number | null;
  message: string;
}

export interface TokenStats { p50: number; p95: number; max: number; total: number }

export interface DatasetReport {
  valid: boolean;
  fileType: FileType;
  format: DatasetFormat | null;
  examples: number;
  errorCount: number;
  // The first MAX_LISTED_PROBLEMS errors; errorCount has them all.
  errors: DatasetProblem[];
  // Line problems that do not block training (duplicates, over-long examples), listed the same way.
  lineWarningCount: number;
  lineWarnings: DatasetProblem[];
  // One-line summaries of the line warnings.
  warnings: string[];
  duplicates: number;
  overLong: number;
  maxSeqLength: number | null;
  // Tokens per example by field; `total` is the whole example as the worker tokenizes it.
  tokens: Record<string, TokenStats> | null;
  // Tokens one epoch feeds the model: each example's total, cut at maxSeqLength.
  trainingTokens: number | null;
}

export interface ParsedExample { line: number; example: Example }

/** Counts the tokens of one field's text, and of a whole example as the worker tokenizes it. */
export interface TokenCounter {
  text(text: string): number;
  example(example: Example): number;
}

export interface ValidateOptions {
  fileType?: FileType;
  mapping?: ColumnMapping;
  counter?: TokenCounter;
  maxSeqLength?: number;
  // Return examples with empty fields instead of rejecting them, so cleaning can drop them.
  allowEmptyFields?: boolean;
}

export const MAX_LISTED_PROBLEMS = 50;
export const MIN_EXAMPLES = 10;
const ROLES = new Set(['system', 'user', 'assistant']);
const KEYS: Record<DatasetFormat, string[]> = { 'prompt-completion': ['prompt', 'completion'], messages: ['messages'], text: ['text'] };

/** Returns the file type of a file name's extension (.jsonl, .csv, .tsv), or null for any other. */
export function fileTypeOf(filename: string): FileType | null {
  const match = /\.(jsonl|csv|tsv)$/i.exec(filename);
  return match ? (match[1]!.toLowerCase() as FileType) : null;
}

/** Validates a data set file and returns its report with the usable examples and their line numbers. */
export function parseDataset(bytes: Uint8Array, options: ValidateOptions = {}): { report: DatasetReport; examples: ParsedExample[] } {
  const fileType = options.fileType ?? 'jsonl';
  const problems = new ProblemList();
  const warnings = new ProblemList();
  const examples: ParsedExample[] = [];
  let format: DatasetFormat | null = null;

  const text = decodeUtf8(bytes, problems);
  if (text !== null) {
    const records = fileType === 'jsonl' ? jsonlRecords(text, problems) : delimitedRecords(text, fileType, options.mapping ?? {}, problems);
    for (const record of records) {
      const recordFormat = formatOf(record.value);
      if (!recordFormat) {
        problems.add(record.line, 'missing keys; each line needs `prompt` and `completion`, a `messages` list, or `text`');
        continue;
      }
      format ??= recordFormat;
      if (recordFormat !== format) {
        problems.add(record.line, `mixed schemas: this line is ${recordFormat} but the file started as ${format}; use one format per file`);
        continue;
      }
      const result = checkRecord(record.value, recordFormat, options.allowEmptyFields ?? false);
      if (typeof result === 'string') problems.add(record.line, result);
      else examples.push({ line: record.line, example: result });
    }
    if (records.length === 0 && problems.count === 0) {
      problems.add(null, `the file is empty; put one example per line, at least ${MIN_EXAMPLES} of them`);
    }
  }

  const duplicates = markDuplicates(examples, warnings);
  const { tokens, overLong, trainingTokens } = countTokens(examples, options, warnings);

  if (problems.count === 0 && examples.length < MIN_EXAMPLES && examples.length > 0) {
    problems.add(null, `only ${examples.length} usable examples; at least ${MIN_EXAMPLES} are needed to fine-tune`);
  }

  const summaries: string[] = [];
  if (duplicates > 0) summaries.push(`${duplicates} duplicate examples; they are kept and weigh more in training unless cleaning removes them`);
  if (overLong > 0) summaries.push(`${overLong} examples are longer than ${options.maxSeqLength} tokens; training cuts them to that length unless cleaning drops them`);

  const report: DatasetReport = {
    valid: problems.count === 0,
    fileType,
    format,
    examples: examples.length,
    errorCount: problems.count,
    errors: problems.listed,
    lineWarningCount: warnings.count,
    lineWarnings: warnings.listed,
    warnings: summaries,
    duplicates,
    overLong,
    maxSeqLength: options.maxSeqLength ?? null,
    tokens,
    trainingTokens,
  };
  return { report, examples };
}

/** Validates a data set file; see parseDataset. */
export function validateDataset(bytes: Uint8Array, options: ValidateOptions = {}): DatasetReport {
  return parseDataset(bytes, options).report;
}

class ProblemList {
  count = 0;
  listed: DatasetProblem[] = [];
  add(line: number | null, message: string) {
    this.count++;
    if (this.listed.length < MAX_LISTED_PROBLEMS) this.listed.push({ line, message });
  }
}

interface RawRecord { line: number; value: unknown }

function decodeUtf8(bytes: Uint8Array, problems: ProblemList): string | null {
  try {
    // ignoreBOM false: the decoder drops a leading UTF-8 byte order mark.
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    problems.add(firstInvalidUtf8Line(bytes), 'invalid UTF-8; save the file as UTF-8');
    return null;
  }
}

/** Splits JSONL text into records; CRLF line ends and trailing blank lines are accepted. */
function jsonlRecords(text: string, problems: ProblemList): RawRecord[] {
  // Split on \n only: JSON strings may contain U+2028 and other separators unescaped.
  const lines = text.split('\n').map((line) => line.replace(/\r$/, ''));
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();

  const records: RawRecord[] = [];
  lines.forEach((content, index) => {
    const line = index + 1;
    if (content.trim() === '') {
      problems.add(line, 'empty line; remove it or put one JSON object on it');
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(content);
    } catch {
      problems.add(line, 'invalid JSON; each line must be one complete JSON object (check quotes, commas and brackets)');
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      problems.add(line, `not a JSON object (got ${typeOf(value)}); each line must be an object such as {"prompt": …, "completion": …}`);
      return;
    }
    records.push({ line, value });
  });
  return records;
}

/**
 * Parses CSV or TSV (RFC 4180 quoting: quoted fields may hold the delimiter, line breaks and
 * doubled quotes) and maps each row to a record through the column mapping.
 */
function delimitedRecords(text: string, fileType: 'csv' | 'tsv', mapping: ColumnMapping, problems: ProblemList): RawRecord[] {
  let rows: { record: string[]; info: { lines: number } }[];
  try {
    // IANA TSV has no quoting, and TSV exports often contain bare quotes inside fields, so TSV
    // takes them literally. A TSV field that starts with a quote is still read as quoted.
    rows = parseCsv(text, { delimiter: fileType === 'tsv' ? '\t' : ',', relax_quotes: fileType === 'tsv', info: true, relax_column_count: true, skip_empty_lines: false }) as unknown as typeof rows;
  } catch (error) {
    if (!(error instanceof CsvError)) throw error;
    // csv-parse reports an unclosed quote at the end of the file; the useful line is the
    // one where that quote opened.
    const line = error.code === 'CSV_QUOTE_NOT_CLOSED'
      ? unclosedQuoteLine(text, fileType === 'tsv' ? '\t' : ',')
      : (error as CsvError & { lines?: number }).lines ?? null;
    problems.add(line, `invalid ${fileType.toUpperCase()}: ${csvErrorText(error.code)}`);
    return [];
  }

  // csv-parse reports the line each row ends on, so a row starts one line after the previous one ended.
  const withStart = rows.map((row, index) => ({ fields: row.record, line: index === 0 ? 1 : rows[index - 1]!.info.lines + 1 }));
  while (withStart.length > 1 && isBlankRow(withStart[withStart.length - 1]!.fields)) withStart.pop();
  const header = withStart.shift();
  if (!header) return [];

  const columns = header.fields.map((name) => name.trim());
  const missingMapping = mappingProblem(mapping, columns);
  if (missingMapping) {
    problems.add(1, missingMapping);
    return [];
  }

  const index = (name: string | undefined) => (name === undefined ? -1 : columns.indexOf(name));
  const at = { prompt: index(mapping.prompt), completion: index(mapping.completion), text: index(mapping.text), system: index(mapping.system) };
  const records: RawRecord[] = [];
  for (const row of withStart) {
    if (isBlankRow(row.fields)) {
      problems.add(row.line, 'empty row; remove it');
      continue;
    }
    if (row.fields.length !== columns.length) {
      problems.add(row.line, `row has ${row.fields.length} fields but the header has ${columns.length}; quote fields that contain the delimiter`);
      continue;
    }
    const field = (i: number) => row.fields[i]!;
    let value: Record<string, unknown>;
    if (at.text >= 0) value = { text: field(at.text) };
    else if (at.system >= 0) {
      value = { messages: [
        { role: 'system', content: field(at.system) },
        { role: 'user', content: field(at.prompt) },
        { role: 'assistant', content: field(at.completion) },
      ] };
    } else value = { prompt: field(at.prompt), completion: field(at.completion) };
    records.push({ line: row.line, value });
  }
  return records;
}

function mappingProblem(mapping: ColumnMapping, columns: string[]): string | null {
  const chosen = Object.entries(mapping).filter(([, column]) => column !== undefined && column !== '');
  if (chosen.length === 0) return `no column mapping; choose the prompt and completion columns, or a text column, among: ${columns.join(', ')}`;
  for (const [role, column] of chosen) {
    if (!columns.includes(column!)) return `column ${JSON.stringify(column)} (mapped to ${role}) is not in the header; the columns are: ${columns.join(', ')}`;
  }
  if (mapping.text) {
    if (mapping.prompt || mapping.completion || mapping.system) return 'map either a text column alone, or prompt and completion columns, not both';
    return null;
  }
  if (!mapping.prompt || !mapping.completion) return 'map both a prompt column and a completion column, or a text column';
  return null;
}

function csvErrorText(code: string): string {
  switch (code) {
    case 'CSV_QUOTE_NOT_CLOSED': return 'a quoted field is not closed; close it with a double quote';
    case 'INVALID_OPENING_QUOTE': return 'a double quote inside an unquoted field; quote the whole field and double the inner quote ("")';
    case 'CSV_INVALID_CLOSING_QUOTE': return 'characters follow a closing quote; double quotes inside a quoted field ("")';
    default: return `the parser reported ${code}`;
  }
}

/**
 * Returns the 1-based line of the quote that opens a field and never closes (RFC 4180: a quote
 * opens only at the start of a field, and "" inside a quoted field is a literal quote), or null.
 */
function unclosedQuoteLine(text: string, delimiter: string): number | null {
  let line = 1;
  let openedAt: number | null = null;
  let fieldStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (openedAt !== null) {
      if (c === '"') {
        if (text[i + 1] === '"') i++;
        else openedAt = null;
      }
    } else if (c === '"' && fieldStart) {
      openedAt = line;
    }
    if (c === '\n') line++;
    fieldStart = openedAt === null && (c === delimiter || c === '\n');
  }
  return openedAt;
}

function isBlankRow(fields: string[]): boolean {
  return fields.length === 1 && fields[0]!.trim() === '';
}

function formatOf(value: unknown): DatasetFormat | null {
  const record = value as Record<string, unknown>;
  if ('messages' in record) return 'messages';
  if ('prompt' in record || 'completion' in record) return 'prompt-completion';
  if ('text' in record) return 'text';
  return null;
}

/** Returns the example, or the problem's message. */
function checkRecord(value: unknown, format: DatasetFormat, allowEmpty: boolean): Example | string {
  const record = value as Record<string, unknown>;
  const unknown = Object.keys(record).find((key) => !KEYS[format].includes(key));
  if (unknown !== undefined) {
    const allowed = KEYS[format].map((k) => `\`${k}\``).join(' and ');
    const missing = format === 'messages' ? [] : KEYS[format].filter((key) => !(key in record));
    // {prompt, answer}: the likely fix is a rename, so the message names the missing key as well.
    if (missing.length > 0) return `unknown key \`${unknown}\` and missing key \`${missing[0]}\`; a ${format} line has only ${allowed} (rename \`${unknown}\` to \`${missing[0]}\`?)`;
    return `unknown key \`${unknown}\`; a ${format} line has only ${allowed}`;
  }
  if (format === 'messages') return checkMessages(record.messages, allowEmpty);
  for (const key of KEYS[format]) {
    if (!(key in record)) return `missing key \`${key}\`; a prompt-completion line needs both \`prompt\` and \`completion\``;
    if (typeof record[key] !== 'string') return `\`${key}\` must be a string, got ${typeOf(record[key])}`;
    if (!allowEmpty && (record[key] as string).trim() === '') return `\`${key}\` is empty`;
  }
  return format === 'text' ? { text: record.text as string } : { prompt: record.prompt as string, completion: record.completion as string };
}

function checkMessages(messages: unknown, allowEmpty: boolean): Example | string {
  if (!Array.isArray(messages) || messages.length === 0) return '`messages` must be a non-empty list of {role, content} objects';
  for (const [i, message] of messages.entries()) {
    if (message === null || typeof message !== 'object' || Array.isArray(message)) return `messages[${i}] must be an object with \`role\` and \`content\``;
    const extra = Object.keys(message).find((key) => key !== 'role' && key !== 'content');
    if (extra !== undefined) return `messages[${i}] has unknown key \`${extra}\`; a message has only \`role\` and \`content\``;
    const { role, content } = message as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role)) return `messages[${i}]: unknown role ${JSON.stringify(role)}; use system, user or assistant`;
    if (typeof content !== 'string') return `messages[${i}].content must be a string, got ${typeOf(content)}`;
    if (!allowEmpty && content.trim() === '') return `messages[${i}].content is empty`;
  }
  const roles = messages.map((m) => (m as ChatMessage).role);
  if (!roles.includes('assistant')) return 'conversation has no assistant turn to learn from';
  if (roles[roles.length - 1] !== 'assistant') return 'conversation must end with an assistant turn';
  return { messages: messages.map((m) => ({ role: (m as ChatMessage).role, content: (m as ChatMessage).content })) };
}

/** Returns the key that identifies an example for exact duplicate detection. */
export function exampleKey(example: Example): string {
  return JSON.stringify(example);
}

function markDuplicates(examples: ParsedExample[], warnings: ProblemList): number {
  const firstLine = new Map<string, number>();
  let duplicates = 0;
  for (const { line, example } of examples) {
    const key = exampleKey(example);
    const first = firstLine.get(key);
    if (first === undefined) {
      firstLine.set(key, line);
      continue;
    }
    duplicates++;
    warnings.add(line, `duplicate of line ${first}`);
  }
  return duplicates;
}

function countTokens(examples: ParsedExample[], options: ValidateOptions, warnings: ProblemList) {
  const counter = options.counter;
  if (!counter || examples.length === 0) return { tokens: null, overLong: 0, trainingTokens: null };

  const fields: Record<string, number[]> = {};
  const push = (field: string, count: number) => (fields[field] ??= []).push(count);
  let overLong = 0;
  let trainingTokens = 0;
  for (const { line, example } of examples) {
    if ('messages' in example) {
      for (const message of example.messages) push(message.role, counter.text(message.content));
    } else if ('text' in example) {
      push('text', counter.text(example.text));
    } else {
      push('prompt', counter.text(example.prompt));
      push('completion', counter.text(example.completion));
    }
    const total = counter.example(example);
    push('total', total);
    trainingTokens += options.maxSeqLength === undefined ? total : Math.min(total, options.maxSeqLength);
    if (options.maxSeqLength !== undefined && total > options.maxSeqLength) {
      overLong++;
      warnings.add(line, `example is ${total} tokens, longer than the maximum sequence length of ${options.maxSeqLength}; training cuts it to ${options.maxSeqLength}`);
    }
  }
  const tokens = Object.fromEntries(Object.entries(fields).map(([field, counts]) => [field, summarize(counts)]));
  return { tokens, overLong, trainingTokens };
}

/** Nearest-rank percentiles of a non-empty list. */
export function summarize(counts: number[]): TokenStats {
  const sorted = [...counts].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
  return { p50: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1]!, total: sorted.reduce((a, b) => a + b, 0) };
}

function typeOf(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

function firstInvalidUtf8Line(bytes: Uint8Array): number {
  let line = 1;
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i === bytes.length || bytes[i] === 0x0a) {
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(start, i));
      } catch {
        return line;
      }
      line++;
      start = i + 1;
    }
  }
  return line;
}

/** Serializes examples as JSONL in the form the worker reads, one object per line. */
export function toJsonl(examples: Example[]): string {
  return examples.map((example) => JSON.stringify(example)).join('\n') + (examples.length > 0 ? '\n' : '');
}
