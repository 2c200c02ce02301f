/**
 * Cleaning of parsed data set examples, the seeded train/validation split and the mixing of
 * general instruction data. Pure and deterministic: the same input, options and seed give
 * the same output.
 */
import { exampleKey, type Example, type ParsedExample, type TokenCounter } from './dataset-file';

export interface CleaningOptions {
  normalizeUnicode: boolean;
  normalizeWhitespace: boolean;
  maskEmails: boolean;
  maskPhones: boolean;
  maskIds: boolean;
  dropEmpty: boolean;
  dropOverLong: boolean;
  dedupeExact: boolean;
  dedupeNear: boolean;
}

export const NO_CLEANING: CleaningOptions = {
  normalizeUnicode: false, normalizeWhitespace: false, maskEmails: false, maskPhones: false, maskIds: false,
  dropEmpty: false, dropOverLong: false, dedupeExact: false, dedupeNear: false,
};

/** Per step, how many examples it changed or removed (zero for a step not chosen). */
export interface CleaningCounts {
  normalizedUnicode: number;
  normalizedWhitespace: number;
  maskedEmails: number;
  maskedPhones: number;
  maskedIds: number;
  droppedEmpty: number;
  droppedOverLong: number;
  exactDuplicates: number;
  nearDuplicates: number;
}

/**
 * Jaccard similarity of word 3-gram sets at or above which a later example counts as a near
 * duplicate of an earlier one. 0.8 catches copies that differ in a few words, punctuation or
 * case, and keeps paraphrases, which share far fewer 3-grams.
 */
export const NEAR_DUPLICATE_THRESHOLD = 0.8;
// MinHash signature: BANDS × ROWS hash functions. With 32 bands of 4 rows, a pair at Jaccard 0.8
// becomes a candidate with probability 1 − (1 − 0.8^4)^32 > 0.9999999; each candidate is then
// confirmed with the exact Jaccard similarity, so MinHash only prunes comparisons.
const BANDS = 32;
const ROWS = 4;

export const EMAIL_MASK = '[EMAIL]';
export const PHONE_MASK = '[PHONE]';
export const ID_MASK = '[ID]';
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
// An optional +country code, a 2-4 digit area code (optionally in brackets), then two groups
// of 3-4 digits; 9 to 15 digits in all, so dates such as 2024-01-15 do not match.
const PHONE = /(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\d{2,4})[ .-]?\d{3,4}[ .-]?\d{3,4}(?!\w)/g;
// Six or more digits, optionally joined by single dashes (account, record or social security
// numbers). Years, short numbers and ISO or day-month-year dates stay.
const ID_NUMBER = /(?<![\w-])\d(?:-?\d){5,}(?![\w-])/g;
const DATE = /^(?:\d{4}-\d{2}-\d{2}|\d{2}-\d{2}-\d{4})$/;

/** Cleans examples in a fixed order: normalize, mask, drop, then deduplicate, and counts each step. */
export function cleanExamples(examples: ParsedExample[], options: CleaningOptions, limits: { counter?: TokenCounter; maxSeqLength?: number } = {}) {
  const counts: CleaningCounts = {
    normalizedUnicode: 0, normalizedWhitespace: 0, maskedEmails: 0, maskedPhones: 0, maskedIds: 0,
    droppedEmpty: 0, droppedOverLong: 0, exactDuplicates: 0, nearDuplicates: 0,
  };
  let current = examples;

  const rewrite = (enabled: boolean, key: keyof CleaningCounts, transform: (text: string) => string) => {
    if (!enabled) return;
    current = current.map((item) => {
      const next = mapText(item.example, transform);
      if (exampleKey(next) === exampleKey(item.example)) return item;
      counts[key]++;
      return { line: item.line, example: next };
    });
  };
  rewrite(options.normalizeUnicode, 'normalizedUnicode', (text) => text.normalize('NFC'));
  rewrite(options.normalizeWhitespace, 'normalizedWhitespace', normalizeWhitespace);
  rewrite(options.maskEmails, 'maskedEmails', (text) => text.replace(EMAIL, EMAIL_MASK));
  rewrite(options.maskPhones, 'maskedPhones', (text) => text.replace(PHONE, (match) => (digitCount(match) >= 9 && digitCount(match) <= 15 ? PHONE_MASK : match)));
  rewrite(options.maskIds, 'maskedIds', (text) => text.replace(ID_NUMBER, (match) => (DATE.test(match) ? match : ID_MASK)));

  if (options.dropEmpty) {
    const kept = current.filter((item) => !hasEmptyField(item.example));
    counts.droppedEmpty = current.length - kept.length;
    current = kept;
  }
  if (options.dropOverLong) {
    const { counter, maxSeqLength } = limits;
    if (!counter || maxSeqLength === undefined) throw new Error('dropping over-long examples needs a token counter and maxSeqLength');
    const kept = current.filter((item) => counter.example(item.example) <= maxSeqLength);
    counts.droppedOverLong = current.length - kept.length;
    current = kept;
  }
  if (options.dedupeExact) {
    const seen = new Set<string>();
    const kept = current.filter((item) => {
      const key = exampleKey(item.example);
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    counts.exactDuplicates = current.length - kept.length;
    current = kept;
  }
  if (options.dedupeNear) {
    const kept = removeNearDuplicates(current);
    counts.nearDuplicates = current.length - kept.length;
    current = kept;
  }
  return { examples: current, counts };
}

function mapText(example: Example, transform: (text: string) => string): Example {
  if ('text' in example) return { text: transform(example.text) };
  if ('messages' in example) return { messages: example.messages.map((m) => ({ role: m.role, content: transform(m.content) })) };
  return { prompt: transform(example.prompt), completion: transform(example.completion) };
}

function textsOf(example: Example): string[] {
  if ('text' in example) return [example.text];
  if ('messages' in example) return example.messages.map((m) => m.content);
  return [example.prompt, example.completion];
}

/**
 * Unifies line ends to \n, turns non-breaking and other Unicode spaces into plain spaces,
 * removes zero-width characters, trailing spaces on each line and runs of more than one blank
 * line, and trims the field. Indentation at the start of a line stays (code examples need it).
 */
export function normalizeWhitespace(text: string): string {
  return text
    .replace(/\r\n?/g, '\n')
    .replace(/[\u200B-\u200D\u2060\uFEFF]/g, '')
    .replace(/[\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]/g, ' ')
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function hasEmptyField(example: Example): boolean {
  return textsOf(example).some((text) => text.replace(/[\s\u200B-\u200D\u2060\uFEFF]/g, '') === '');
}

function digitCount(text: string): number {
  return text.replace(/\D/g, '').length;
}

/** Returns the word 3-grams of an example's text (NFKC, lower-cased, punctuation removed), which near-duplicate detection compares. */
export function shingles(example: Example): Set<string> {
  const words = textsOf(example).join(' ').normalize('NFKC').toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
  const result = new Set<string>();
  if (words.length < 3) result.add(words.join(' '));
  for (let i = 0; i + 3 <= words.length; i++) result.add(`${words[i]} ${words[i + 1]} ${words[i + 2]}`);
  return result;
}

export function jaccard(a: Set<string>, b: Set<string>): number {
  let shared = 0;
  for (const item of a) if (b.has(item)) shared++;
  const union = a.size + b.size - shared;
  return union === 0 ? 1 : shared / union;
}

/** Keeps the first of every group of near duplicates, in input order. */
function removeNearDuplicates(examples: ParsedExample[]): ParsedExample[] {
  const buckets = new Map<string, number[]>();
  const keptShingles: Set<string>[] = [];
  const kept: ParsedExample[] = [];
  for (const item of examples) {
    const set = shingles(item.example);
    const bandKeys = minhashBands(set);
    const candidates = new Set<number>();
    for (const key of bandKeys) for (const index of buckets.get(key) ?? []) candidates.add(index);
    const duplicate = [...candidates].some((index) => jaccard(set, keptShingles[index]!) >= NEAR_DUPLICATE_THRESHOLD);
    if (duplicate) continue;
    const index = kept.length;
    kept.push(item);
    keptShingles.push(set);
    for (const key of bandKeys) {
      const bucket = buckets.get(key);
      if (bucket) bucket.push(index);
      else buckets.set(key, [index]);
    }
  }
  return kept;
}

function minhashBands(set: Set<string>): string[] {
  const hashes = [...set].map(fnv1a);
  const signature: number[] = [];
  for (let i = 0; i < BANDS * ROWS; i++) {
    const seed = Math.imul(i + 1, 0x9e3779b1);
    let min = 0xffffffff;
    for (const hash of hashes) {
      const value = fmix32(hash ^ seed);
      if (value < min) min = value;
    }
    signature.push(min);
  }
  const keys: string[] = [];
  for (let band = 0; band < BANDS; band++) keys.push(`${band}:${signature.slice(band * ROWS, band * ROWS + ROWS).join(',')}`);
  return keys;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

// The MurmurHash3 32-bit finalizer: a bijective mix, so each seed acts as one hash function.
function fmix32(value: number): number {
  let h = value >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A seeded pseudo-random generator (mulberry32) returning floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Returns the indices 0..n-1 in a seeded Fisher-Yates order. */
export function seededOrder(n: number, seed: number): number[] {
  const random = seededRandom(seed);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/**
 * Splits examples into training and validation sets: round(n × fraction) examples chosen by
 * a seeded shuffle go to validation. Both parts keep the input order.
 */
export function splitExamples<T>(examples: T[], validationFraction: number, seed: number): { train: T[]; validation: T[] } {
  if (!(validationFraction >= 0 && validationFraction <= 0.5)) throw new Error(`validation fraction ${validationFraction} is outside 0-0.5`);
  const size = Math.round(examples.length * validationFraction);
  const chosen = new Set(seededOrder(examples.length, seed).slice(0, size));
  return {
    train: examples.filter((_, i) => !chosen.has(i)),
    validation: examples.filter((_, i) => chosen.has(i)),
  };
}
