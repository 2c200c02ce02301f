import { describe, expect, it } from 'vitest';
import { validateJsonlDataset } from '../../server/formats/jsonl-dataset';

const line = (i: number) => JSON.stringify({ prompt: `question ${i}`, completion: `answer ${i}` });
const lines = (n: number) => Array.from({ length: n }, (_, i) => line(i));
const encode = (text: string) => new TextEncoder().encode(text);

describe('JSONL data set validation', () => {
  it('accepts prompt/completion lines with a BOM, CRLF and trailing blank lines', () => {
    const report = validateJsonlDataset(encode('\uFEFF' + lines(12).join('\r\n') + '\r\n\r\n'), (t) => t.split(' ').length);
    expect(report.valid).toBe(true);
    expect(report.examples).toBe(12);
    expect(report.tokens?.prompt).toEqual({ p50: 2, p95: 2, max: 2, total: 24 });
  });

  it('names the line of malformed JSON', () => {
    const rows = lines(12);
    rows[6] = '{"prompt": "broken"';
    const report = validateJsonlDataset(encode(rows.join('\n')));
    expect(report.valid).toBe(false);
    expect(report.errors).toEqual([{ line: 7, message: expect.stringMatching(/^invalid JSON/) }]);
  });

  it('names a missing key', () => {
    const rows = lines(12);
    rows[2] = JSON.stringify({ prompt: 'only a prompt' });
    expect(validateJsonlDataset(encode(rows.join('\n'))).errors[0]).toEqual({ line: 3, message: 'missing key `completion`; each line needs `prompt` and `completion`' });
  });

  it('rejects mixed schemas', () => {
    const rows = lines(12);
    rows[4] = JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] });
    expect(validateJsonlDataset(encode(rows.join('\n'))).errors[0]?.message).toMatch(/mixed schemas/);
  });

  it('rejects conversations that do not end with the assistant', () => {
    const rows = Array.from({ length: 12 }, () => JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'again' }] }));
    expect(validateJsonlDataset(encode(rows.join('\n'))).errors[0]?.message).toBe('conversation must end with an assistant turn');
  });

  it('rejects unknown roles and non-string content', () => {
    const bad = [
      JSON.stringify({ messages: [{ role: 'robot', content: 'x' }, { role: 'assistant', content: 'y' }] }),
      JSON.stringify({ messages: [{ role: 'user', content: 5 }, { role: 'assistant', content: 'y' }] }),
    ];
    const report = validateJsonlDataset(encode(bad.join('\n')));
    expect(report.errors.map((e) => e.message)).toEqual(['messages[0]: unknown role "robot"; use system, user or assistant', 'messages[0].content must be a string, got number']);
  });

  it('reports invalid UTF-8 with its line', () => {
    const bytes = Buffer.concat([Buffer.from(lines(3).join('\n') + '\n'), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]);
    expect(validateJsonlDataset(bytes).errors).toEqual([{ line: 4, message: 'invalid UTF-8; save the file as UTF-8' }]);
  });

  it('refuses fewer than 10 usable examples with the count', () => {
    const report = validateJsonlDataset(encode(lines(4).join('\n')));
    expect(report.valid).toBe(false);
    expect(report.errors[0]).toEqual({ line: null, message: 'only 4 usable examples; at least 10 are needed to fine-tune' });
  });

  it('rejects an empty file as such', () => {
    expect(validateJsonlDataset(encode('\n\n')).errors).toEqual([{ line: null, message: 'the file is empty; put one JSON example per line, at least 10 of them' }]);
  });

  it('lists the first 50 problems and counts them all', () => {
    const report = validateJsonlDataset(encode(Array.from({ length: 80 }, () => 'not json').join('\n')));
    expect(report.errors).toHaveLength(50);
    expect(report.errorCount).toBe(80);
  });

  it('counts duplicates as a warning', () => {
    const report = validateJsonlDataset(encode([...lines(10), line(0), line(1)].join('\n')));
    expect(report.valid).toBe(true);
    expect(report.duplicates).toBe(2);
  });
});
