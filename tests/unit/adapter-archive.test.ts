import { describe, expect, it } from 'vitest';
import { archiveFileName, archivePath, decodeHeaderText, encodeHeaderText } from '../../lib/adapter-archive';

describe('archive route contract', () => {
  it('builds the path and file name', () => {
    expect(archivePath('demo', 'pubmedqa-demo', 3)).toBe('/api/adapters/demo/pubmedqa-demo/versions/3/archive');
    expect(archivePath('demo', 'pubmedqa-demo', 'latest')).toBe('/api/adapters/demo/pubmedqa-demo/versions/latest/archive');
    expect(archiveFileName('demo', 'pubmedqa-demo', 3)).toBe('demo--pubmedqa-demo-v3.tar');
  });

  it('encodes header text reversibly', () => {
    const cases = ['plain reason', 'wrong dtype — use v2', '100% broken', 'line one\r\nline two\ttab', 'emoji 🚫 and ü', '%E2%80%94 literal'];
    for (const text of cases) {
      const encoded = encodeHeaderText(text);
      expect(encoded, text).toMatch(/^[\x20-\x7e]*$/);
      expect(decodeHeaderText(encoded), text).toBe(text);
    }
    expect(encodeHeaderText('plain reason')).toBe('plain reason');
    expect(encodeHeaderText('100% — ok')).toBe('100%25 %E2%80%94 ok');
  });
});
