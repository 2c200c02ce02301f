/**
 * Word n-gram overlap between training text and benchmark items, a common contamination
 * check. Text is lowercased and split into words: runs of Unicode
 * letters and digits, so punctuation, JSON escapes and whitespace never count. An item is
 * contaminated when at least one of its n-grams occurs anywhere in the training text.
 */

/** Words per n-gram. */
export const NGRAM_SIZE = 13;
/** A result is flagged when more than this share of its checked items is contaminated. */
export const CONTAMINATION_THRESHOLD = 0.05;

const WORD = /[\p{L}\p{N}]+/gu;

export function normalizedWords(text: string): string[] {
  return text.toLowerCase().match(WORD) ?? [];
}

export interface OverlapReport {
  n: number;
  threshold: number;
  // Items with at least n words. Shorter items cannot share an n-gram, so they are not counted.
  checkedItems: number;
  contaminatedItems: number;
  // contaminatedItems / checkedItems, 0 when no item was long enough.
  overlap: number;
  flagged: boolean;
  // Ids of the first contaminated items, for the run page.
  examples: string[];
}

const MAX_EXAMPLES = 10;

/**
 * Indexes the n-grams of benchmark items, then scans training texts for them. Memory is the
 * items' n-grams only, because training text streams through `scan` one document at a time.
 */
export class OverlapIndex {
  private readonly owners = new Map<string, number[]>();
  private readonly hit: boolean[];
  private readonly checked: boolean[];

  constructor(private readonly items: { id: string; text: string }[], private readonly n = NGRAM_SIZE) {
    this.hit = items.map(() => false);
    this.checked = items.map(() => false);
    items.forEach((item, index) => {
      const words = normalizedWords(item.text);
      if (words.length < n) return;
      this.checked[index] = true;
      for (let start = 0; start + n <= words.length; start++) {
        const gram = words.slice(start, start + n).join(' ');
        const owners = this.owners.get(gram);
        if (!owners) this.owners.set(gram, [index]);
        else if (owners[owners.length - 1] !== index) owners.push(index);
      }
    });
  }

  /** Marks every item that shares an n-gram with one training document. */
  scan(text: string): void {
    if (this.owners.size === 0) return;
    const words = normalizedWords(text);
    for (let start = 0; start + this.n <= words.length; start++) {
      const owners = this.owners.get(words.slice(start, start + this.n).join(' '));
      if (owners) for (const index of owners) this.hit[index] = true;
    }
  }

  report(threshold = CONTAMINATION_THRESHOLD): OverlapReport {
    const checkedItems = this.checked.filter(Boolean).length;
    const contaminated = this.items.filter((_, index) => this.hit[index]);
    const overlap = checkedItems === 0 ? 0 : contaminated.length / checkedItems;
    return {
      n: this.n, threshold, checkedItems, contaminatedItems: contaminated.length, overlap, flagged: overlap > threshold,
      examples: contaminated.slice(0, MAX_EXAMPLES).map((item) => item.id),
    };
  }
}

/** Collects the string values of a JSON value (a data set line), the text a model trains on. */
export function jsonStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const item of value) jsonStrings(item, out);
  else if (value !== null && typeof value === 'object') for (const item of Object.values(value)) jsonStrings(item, out);
  return out;
}
