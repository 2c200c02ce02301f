import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { cleanExamples, jaccard, normalizeWhitespace, NO_CLEANING, shingles, splitExamples, type CleaningOptions } from '../../server/formats/dataset-clean';
import { parseDataset, type Example } from '../../server/formats/dataset-file';
import { mixGeneral } from '../../server/formats/dataset-mix';
import { chatTemplateOf, createTokenCounter, specialTokensOf } from '../../server/formats/token-counter';
import general from '../../server/data/self-instruct-seed.json';

const MODEL = '.data/models/smollm2-135m-instruct';
function smolCounter() {
  const config = JSON.parse(fs.readFileSync(path.join(MODEL, 'tokenizer_config.json'), 'utf8'));
  const tokenizer = new Tokenizer(JSON.parse(fs.readFileSync(path.join(MODEL, 'tokenizer.json'), 'utf8')), config);
  const templateFile = fs.existsSync(path.join(MODEL, 'chat_template.jinja')) ? fs.readFileSync(path.join(MODEL, 'chat_template.jinja'), 'utf8') : null;
  return createTokenCounter(tokenizer, chatTemplateOf(config, templateFile)!, specialTokensOf(config));
}

const fixture = parseDataset(new Uint8Array(fs.readFileSync('tests/fixtures/datasets/cleaning.jsonl')));
const ALL: CleaningOptions = { normalizeUnicode: true, normalizeWhitespace: true, maskEmails: true, maskPhones: true, maskIds: true, dropEmpty: true, dropOverLong: true, dedupeExact: true, dedupeNear: true };
const completion = (examples: { example: Example }[], prompt: string) => (examples.find((e) => 'prompt' in e.example && e.example.prompt === prompt)?.example as { completion: string } | undefined)?.completion;

describe('cleaning the known fixture', () => {
  const counter = smolCounter();

  it('parses the fixture as 26 valid examples', () => {
    expect(fixture.report.errors).toEqual([]);
    expect(fixture.examples).toHaveLength(26);
  });

  it('counts every step', () => {
    const { examples, counts } = cleanExamples(fixture.examples, ALL, { counter, maxSeqLength: 100 });
    expect(counts).toEqual({
      normalizedUnicode: 1, normalizedWhitespace: 2, maskedEmails: 1, maskedPhones: 2, maskedIds: 2,
      droppedEmpty: 1, droppedOverLong: 1, exactDuplicates: 2, nearDuplicates: 2,
    });
    expect(examples).toHaveLength(20);
  });

  it('masks emails, phones and ID numbers but keeps dates', () => {
    const { examples } = cleanExamples(fixture.examples, ALL, { counter, maxSeqLength: 100 });
    expect(completion(examples, 'How do I reach support?')).toBe('Email [EMAIL] for help.');
    expect(completion(examples, 'What is the office number?')).toBe('Call [PHONE] during office hours.');
    expect(completion(examples, 'What is the fax number?')).toBe('Send faxes to [PHONE].');
    expect(completion(examples, 'Which account was charged?')).toBe('Account [ID] was charged twice.');
    expect(completion(examples, 'What is the patient SSN?')).toBe('It is [ID].');
    expect(completion(examples, 'When was the visit?')).toBe('The visit was on 2024-01-15, in the year 2024.');
  });

  it('normalizes to NFC and trims whitespace', () => {
    const { examples } = cleanExamples(fixture.examples, ALL, { counter, maxSeqLength: 100 });
    expect(completion(examples, 'Spell the word cafe with its accent.')).toBe('Caf\u00e9 is spelled with an e and a combining acute accent.');
    expect(completion(examples, 'Write two lines.')).toBe('Line one.\nLine two.');
  });

  it('keeps the first near duplicate and the paraphrase', () => {
    const { examples } = cleanExamples(fixture.examples, { ...NO_CLEANING, dedupeNear: true });
    const scenes = examples.filter((e) => 'prompt' in e.example && /describe the scene/i.test(e.example.prompt)).map((e) => e.line);
    expect(scenes).toEqual([23, 26]);
  });

  it('changes nothing with every option off', () => {
    const { examples, counts } = cleanExamples(fixture.examples, NO_CLEANING);
    expect(examples).toEqual(fixture.examples);
    expect(Object.values(counts).every((n) => n === 0)).toBe(true);
  });

  it('needs a token counter to drop over-long examples', () => {
    expect(() => cleanExamples(fixture.examples, { ...NO_CLEANING, dropOverLong: true })).toThrow(/token counter/);
  });
});

describe('near-duplicate measure', () => {
  it('scores one changed word of fourteen above the threshold', () => {
    const a = shingles({ text: 'The quick brown fox jumps over the lazy dog near the river bank today.' });
    const b = shingles({ text: 'The quick brown fox jumps over the lazy dog near the river bank tonight.' });
    expect(jaccard(a, b)).toBeCloseTo(11 / 13, 6);
  });

  it('keeps indentation', () => {
    expect(normalizeWhitespace('def f():\n    return 1   \n\n\n\nend')).toBe('def f():\n    return 1\n\nend');
  });
});

describe('train/validation split', () => {
  const items = Array.from({ length: 19 }, (_, i) => i);

  it('puts round(n × fraction) items in validation', () => {
    const { train, validation } = splitExamples(items, 0.2, 7);
    expect(validation).toHaveLength(4);
    expect(train).toHaveLength(15);
    expect([...train, ...validation].sort((a, b) => a - b)).toEqual(items);
  });

  it('is the same for the same seed and differs for another', () => {
    expect(splitExamples(items, 0.2, 7)).toEqual(splitExamples(items, 0.2, 7));
    expect(splitExamples(items, 0.2, 8).validation).not.toEqual(splitExamples(items, 0.2, 7).validation);
  });

  it('rejects a fraction over one half', () => {
    expect(() => splitExamples(items, 0.6, 1)).toThrow('validation fraction 0.6 is outside 0-0.5');
  });
});

describe('mixing general data', () => {
  const pool = general.examples as Example[];
  const domain = Array.from({ length: 20 }, (_, i): Example => ({ prompt: `domain question ${i}`, completion: `domain answer ${i}` }));

  it('adds general examples to make up the ratio', () => {
    const mixed = mixGeneral(domain, 'prompt-completion', pool, 0.2, 42);
    expect(mixed.requested).toBe(5);
    expect(mixed.count).toBe(5);
    expect(mixed.examples).toHaveLength(25);
    expect(mixed.examples.filter((e) => 'prompt' in e && e.prompt.startsWith('domain question'))).toHaveLength(20);
  });

  it('caps the count at the size of the general set', () => {
    const many = Array.from({ length: 400 }, (_, i): Example => ({ prompt: `q${i}`, completion: `a${i}` }));
    const mixed = mixGeneral(many, 'prompt-completion', pool, 0.5, 1);
    expect(mixed.requested).toBe(400);
    expect(mixed.count).toBe(175);
    expect(mixed.examples).toHaveLength(575);
  });

  it('is deterministic for a seed', () => {
    expect(mixGeneral(domain, 'prompt-completion', pool, 0.3, 3)).toEqual(mixGeneral(domain, 'prompt-completion', pool, 0.3, 3));
  });

  it('turns general pairs into conversations for a messages set', () => {
    const chats = domain.map((e): Example => ({ messages: [{ role: 'user', content: (e as { prompt: string }).prompt }, { role: 'assistant', content: 'ok' }] }));
    const mixed = mixGeneral(chats, 'messages', pool, 0.1, 5);
    expect(mixed.count).toBe(2);
    expect(mixed.examples.every((e) => 'messages' in e)).toBe(true);
  });

  it('rejects a ratio over one half and plain-text sets', () => {
    expect(() => mixGeneral(domain, 'prompt-completion', pool, 0.6, 1)).toThrow('mix ratio 0.6 is outside 0-0.5; use a share such as 0.2 for 20%');
    expect(() => mixGeneral([{ text: 'x' }], 'text', pool, 0.2, 1)).toThrow(/not plain text/);
  });
});
