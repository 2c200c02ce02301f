import { parseDocument } from 'yaml';

/** The model card fields the registry reads from README.md's YAML front matter. */
export interface CardMetadata {
  baseModel: string[];
  libraryName: string | null;
  license: string | null;
  tags: string[];
  datasets: string[];
  language: string[];
  domain: string | null;
  // Every key of the front matter, as parsed, including ones the registry does not read.
  raw: Record<string, unknown>;
}

export interface ParsedCard {
  metadata: CardMetadata;
  // The Markdown after the front matter.
  body: string;
  errors: string[];
  warnings: string[];
}

// Front matter is a short header; a larger one is a mistake or an attack on the parser.
const MAX_FRONT_MATTER_BYTES = 64 * 1024;
const FRONT_MATTER = /^\uFEFF?---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/;

function stringList(value: unknown, key: string, errors: string[]): string[] {
  if (value === undefined || value === null) return [];
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value as string[];
  errors.push(`README.md front matter: ${key} must be a string or a list of strings, got ${JSON.stringify(value).slice(0, 100)}`);
  return [];
}

function optionalString(value: unknown, key: string, errors: string[]): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  errors.push(`README.md front matter: ${key} must be a string, got ${JSON.stringify(value).slice(0, 100)}`);
  return null;
}

/**
 * Reads a Hugging Face style model card: YAML front matter between `---` lines, then Markdown.
 * A card without front matter is valid, with empty metadata and a warning. Malformed YAML, or
 * a field of the wrong type, is an error that names the field.
 */
export function parseModelCard(text: string): ParsedCard {
  const empty: CardMetadata = { baseModel: [], libraryName: null, license: null, tags: [], datasets: [], language: [], domain: null, raw: {} };
  const match = FRONT_MATTER.exec(text);
  if (!match) {
    return { metadata: empty, body: text, errors: [], warnings: ['README.md has no YAML front matter; add base_model, library_name: peft, license and tags between --- lines so the adapter can be found by them'] };
  }
  const yamlText = match[1]!;
  const body = text.slice(match[0].length);
  if (Buffer.byteLength(yamlText) > MAX_FRONT_MATTER_BYTES) {
    return { metadata: empty, body, errors: [`README.md front matter is ${Buffer.byteLength(yamlText)} bytes; the limit is ${MAX_FRONT_MATTER_BYTES}`], warnings: [] };
  }

  // Aliases are capped so a "billion laughs" document cannot expand without bound.
  const document = parseDocument(yamlText, { prettyErrors: false });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const line = first.linePos?.[0]?.line;
    return { metadata: empty, body, errors: [`README.md front matter is not valid YAML${line ? ` (line ${line + 1} of the file)` : ''}: ${first.message.split('\n')[0]}`], warnings: [] };
  }
  let raw: unknown;
  try {
    raw = document.toJS({ maxAliasCount: 50 });
  } catch (error) {
    return { metadata: empty, body, errors: [`README.md front matter could not be read: ${(error as Error).message}`], warnings: [] };
  }
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    return { metadata: empty, body, errors: ['README.md front matter must be a YAML mapping (key: value lines)'], warnings: [] };
  }

  const fields = raw as Record<string, unknown>;
  const errors: string[] = [];
  const warnings: string[] = [];
  const metadata: CardMetadata = {
    baseModel: stringList(fields.base_model, 'base_model', errors),
    libraryName: optionalString(fields.library_name, 'library_name', errors),
    license: optionalString(fields.license, 'license', errors),
    tags: stringList(fields.tags, 'tags', errors).map((tag) => tag.trim()).filter(Boolean),
    datasets: stringList(fields.datasets, 'datasets', errors),
    language: stringList(fields.language, 'language', errors),
    domain: optionalString(fields.domain, 'domain', errors),
    raw: JSON.parse(JSON.stringify(fields)) as Record<string, unknown>,
  };
  if (metadata.libraryName !== null && metadata.libraryName !== 'peft') {
    warnings.push(`README.md says library_name: ${metadata.libraryName}; adapters here are loaded with PEFT, so set library_name: peft`);
  }
  if (metadata.tags.length > 50) errors.push(`README.md front matter has ${metadata.tags.length} tags; the limit is 50`);
  if (metadata.tags.some((tag) => tag.length > 64)) errors.push('README.md front matter: each tag must be at most 64 characters');
  return { metadata, body, errors, warnings };
}
