/**
 * Validation of a fine-tuning data set in JSONL: each line is either
 * {"prompt": str, "completion": str} or {"messages": [{"role", "content"}, ...]}.
 * Pure: token counting is injected so this module imports nothing of ours.
 */

export type DatasetFormat = 'prompt-completion' | 'messages';

export interface DatasetProblem {
  // 1-based line number, or null for a problem of the whole file.
  line: number | null;
  message: string;
}

export interface TokenStats {
  p50: number;
  p95: number;
  max: number;
  total: number;
}

export interface DatasetReport {
  valid: boolean;
  format: DatasetFormat | null;
  examples: number;
  errorCount: number;
  // The first MAX_LISTED_ERRORS problems; errorCount has them all.
  errors: DatasetProblem[];
  warnings: string[];
  duplicates: number;
  tokens: Record<string, TokenStats> | null;
}

export type Example =
  | { prompt: string; completion: string }
  | { messages: { role: string; content: string }[] };

export const MAX_LISTED_ERRORS = 50;
export const MIN_EXAMPLES = 10;
const ROLES = new Set(['system', 'user', 'assistant']);

type CountTokens = (text: string) => number;

export function validateJsonlDataset(bytes: Uint8Array, countTokens?: CountTokens): DatasetReport {
  const errors: DatasetProblem[] = [];
  const warnings: string[] = [];
  const examples: Example[] = [];
  let format: DatasetFormat | null = null;

  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const line = firstInvalidUtf8Line(bytes);
    return report(false, null, [], [{ line, message: 'invalid UTF-8; save the file as UTF-8' }], 1, [], 0, null);
  }

  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();

  let errorCount = 0;
  const addError = (line: number | null, message: string) => {
    errorCount++;
    if (errors.length < MAX_LISTED_ERRORS) errors.push({ line, message });
  };

  lines.forEach((content, index) => {
    const line = index + 1;
    if (content.trim() === '') {
      addError(line, 'empty line; remove it or put one JSON object on it');
      return;
    }
    let value: unknown;
    try {
      value = JSON.parse(content);
    } catch (error) {
      addError(line, `invalid JSON (${(error as Error).message}); each line must be one JSON object`);
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      addError(line, 'not a JSON object; each line needs `prompt` and `completion` or a `messages` list');
      return;
    }
    const record = value as Record<string, unknown>;
    let lineFormat: DatasetFormat | null = null;
    if ('messages' in record) lineFormat = 'messages';
    else if ('prompt' in record || 'completion' in record) lineFormat = 'prompt-completion';
    if (!lineFormat) {
      addError(line, 'missing keys; each line needs `prompt` and `completion` or a `messages` list');
      return;
    }
    format ??= lineFormat;
    if (lineFormat !== format) {
      addError(line, `mixed schemas: this line is ${lineFormat} but the file started as ${format}; use one format per file`);
      return;
    }
    const problem = lineFormat === 'messages' ? checkMessages(record.messages) : checkPromptCompletion(record);
    if (problem) {
      addError(line, problem);
      return;
    }
    examples.push(lineFormat === 'messages'
      ? { messages: record.messages as { role: string; content: string }[] }
      : { prompt: record.prompt as string, completion: record.completion as string });
  });

  const seen = new Set<string>();
  let duplicates = 0;
  for (const example of examples) {
    const key = JSON.stringify(example);
    if (seen.has(key)) duplicates++;
    seen.add(key);
  }
  if (duplicates > 0) warnings.push(`${duplicates} duplicate examples; they are kept and weigh more in training`);

  if (lines.length === 0) {
    addError(null, `the file is empty; put one JSON example per line, at least ${MIN_EXAMPLES} of them`);
  } else if (errorCount === 0 && examples.length < MIN_EXAMPLES) {
    addError(null, `only ${examples.length} usable examples; at least ${MIN_EXAMPLES} are needed to fine-tune`);
  }

  const tokens = countTokens && examples.length > 0 ? tokenStats(examples, countTokens) : null;
  return report(errorCount === 0, format, examples, errors, errorCount, warnings, duplicates, tokens);
}

function report(valid: boolean, format: DatasetFormat | null, examples: Example[], errors: DatasetProblem[], errorCount: number,
  warnings: string[], duplicates: number, tokens: Record<string, TokenStats> | null): DatasetReport {
  return { valid, format, examples: examples.length, errorCount, errors, warnings, duplicates, tokens };
}

function checkPromptCompletion(record: Record<string, unknown>): string | null {
  for (const key of ['prompt', 'completion'] as const) {
    if (!(key in record)) return `missing key \`${key}\`; each line needs \`prompt\` and \`completion\``;
    if (typeof record[key] !== 'string') return `\`${key}\` must be a string, got ${typeOf(record[key])}`;
    if ((record[key] as string).trim() === '') return `\`${key}\` is empty`;
  }
  return null;
}

function checkMessages(messages: unknown): string | null {
  if (!Array.isArray(messages) || messages.length === 0) return '`messages` must be a non-empty list of {role, content} objects';
  for (const [i, message] of messages.entries()) {
    if (message === null || typeof message !== 'object' || Array.isArray(message)) return `messages[${i}] must be an object with \`role\` and \`content\``;
    const { role, content } = message as Record<string, unknown>;
    if (typeof role !== 'string' || !ROLES.has(role)) return `messages[${i}]: unknown role ${JSON.stringify(role)}; use system, user or assistant`;
    if (typeof content !== 'string') return `messages[${i}].content must be a string, got ${typeOf(content)}`;
    if (content.trim() === '') return `messages[${i}].content is empty`;
  }
  if (!messages.some((m) => (m as { role: string }).role === 'assistant')) return 'conversation has no assistant turn to learn from';
  if ((messages[messages.length - 1] as { role: string }).role !== 'assistant') return 'conversation must end with an assistant turn';
  return null;
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

function tokenStats(examples: Example[], countTokens: CountTokens): Record<string, TokenStats> {
  const fields: Record<string, number[]> = {};
  const push = (field: string, count: number) => (fields[field] ??= []).push(count);

  for (const example of examples) {
    if ('messages' in example) {
      let total = 0;
      for (const message of example.messages) {
        const count = countTokens(message.content);
        total += count;
        if (message.role === 'assistant') push('assistant', count);
        else push(message.role, count);
      }
      push('total', total);
    } else {
      const prompt = countTokens(example.prompt);
      const completion = countTokens(example.completion);
      push('prompt', prompt);
      push('completion', completion);
      push('total', prompt + completion);
    }
  }

  return Object.fromEntries(Object.entries(fields).map(([field, counts]) => [field, summarize(counts)]));
}

function summarize(counts: number[]): TokenStats {
  const sorted = [...counts].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { p50: at(0.5), p95: at(0.95), max: sorted[sorted.length - 1]!, total: sorted.reduce((a, b) => a + b, 0) };
}
