/**
 * The benchmark suites (medical, finance, general) and the task files they score, built from
 * public data sets: the official PubMedQA test split, MMLU subject test files, Financial
 * PhraseBank (sentences all annotators agreed on) and the ARC test sets.
 *
 * The files are read from DATA_DIR, or from a `shared/data` folder beside the checkout, and
 * checked against their sha256. Only the PubMedQA files can also be downloaded (see
 * demo-data.ts); for the others a missing folder is an error that names DATA_DIR.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Client } from '../lib/trpc-client';
import { dataFolders, pubmedqaSplits, toJsonl } from './demo-data';
import { PUBMEDQA_TASK, registerTaskFromFile } from './seed-lib';

export interface TaskRow { id: string; prompt: string; choices: string[]; gold: number }

// sha256 of each file read here, as published with the data kit.
const FILE_SHA256: Record<string, string> = {
  'arc/arc_easy.jsonl': 'd2d12e59543acf9a5ef6079634a72b30215e36c2fd4236fff3bc855d287b87f5',
  'arc/arc_challenge.jsonl': '1ae3aeedf1951d881cbd5c2e3a31e78a1993d251479afbe4cb413b6707244636',
  'financial_phrasebank/Sentences_AllAgree.txt': '5fb370b3005b9a2759f708849a691ad2e4d2593d4c995c1afde229398a516594',
  'mmlu/test/anatomy_test.csv': '966dfd5c4579885ebdb8c05d6754ae5834f672632586d8595be3c0f9360e6f4e',
  'mmlu/test/astronomy_test.csv': '87c9c3cb5a55395c70dd9ed521dd7d2629fd4ff236c5ab647102e007f52a9341',
  'mmlu/test/clinical_knowledge_test.csv': '06a1ea973000d5ef5d2664c4ac1c68d0423f1cab6b3b682be7942633740811f1',
  'mmlu/test/college_biology_test.csv': 'e1204cb9d19887ea266145f038b5d4cc1fbc33d7efce186259c4ecca1cbe3119',
  'mmlu/test/college_medicine_test.csv': '9c533cfff89edaa317b2e79bbabcdd5e2e522e019679cb4a6475e5f2a1861b1e',
  'mmlu/test/computer_security_test.csv': '8e40f809858db9dd8585036b53984e570b6101f72be2214b85e979c7fafa307f',
  'mmlu/test/econometrics_test.csv': '10eb6b2d3a519a463872ef75902991b51ebf45865b29888e86d40228ace24029',
  'mmlu/test/high_school_macroeconomics_test.csv': 'e60b488a00f908bed94e5ed46638506a203bab0763fc22d20a3bbf0d939f5d02',
  'mmlu/test/high_school_microeconomics_test.csv': 'a250cc4976654e479cecdb7b66046ce2412df3e5e1b9c3d145ed344eae9a2256',
  'mmlu/test/high_school_world_history_test.csv': '7787343ae18e4e1ef833c8630c0c914c62f42c2f35d8b90f4bec2eecccfc161e',
  'mmlu/test/medical_genetics_test.csv': 'cc30c698e94f12c00e610a39c62d1a1d9587fa53c005359317346081f722c5e6',
  'mmlu/test/professional_accounting_test.csv': 'a0960b00b979aec320d8e74e1492683df5709000decc4752a67792fe66f8478a',
  'mmlu/test/professional_medicine_test.csv': 'a034bf0dda10cb0848bdd3097eb1547d61ca2dac9e9b871563691621c38d51e9',
  'mmlu/test/sociology_test.csv': 'f6c464600032aa2bb53294ad53217fbb650601eee206af947b3ce4c587ff5bed',
};

async function readDataFile(name: string): Promise<Buffer> {
  const expected = FILE_SHA256[name];
  if (!expected) throw new Error(`no sha256 is recorded for data file ${name}; add it to FILE_SHA256`);
  for (const dir of dataFolders()) {
    const bytes = await fs.readFile(path.join(dir, name)).catch(() => null);
    if (!bytes) continue;
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== expected) throw new Error(`${path.join(dir, name)} has sha256 ${digest}, expected ${expected}; replace it with the published file`);
    return bytes;
  }
  throw new Error(`data file ${name} was not found in ${dataFolders().join(', ')}; set DATA_DIR to the folder that contains it`);
}

/** Parses RFC 4180 CSV (quoted fields may hold commas, quotes and line breaks). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (char === '"') quoted = false; else field += char;
    } else if (char === '"') quoted = true;
    else if (char === ',') { row.push(field); field = ''; } else if (char === '\n' || char === '\r') {
      if (char === '\r' && text[i + 1] === '\n') i++;
      row.push(field); rows.push(row); row = []; field = '';
    } else field += char;
  }
  if (field !== '' || row.length > 0) { row.push(field); rows.push(row); }
  return rows;
}

const MMLU_LETTERS = ['A', 'B', 'C', 'D'];

/** Builds MMLU items in the harness's usual zero-shot form: the question, lettered options, and the letter as the answer. */
export async function mmluTask(subject: string): Promise<TaskRow[]> {
  const name = `mmlu/test/${subject}_test.csv`;
  const rows = parseCsv((await readDataFile(name)).toString('utf8'));
  const title = subject.replaceAll('_', ' ');
  return rows.map((row, index) => {
    if (row.length !== 6 || !MMLU_LETTERS.includes(row[5]!)) throw new Error(`${name} row ${index + 1}: expected question, four options and an answer letter A-D, got ${row.length} fields`);
    const options = row.slice(1, 5).map((option, i) => `${MMLU_LETTERS[i]}. ${option}`).join('\n');
    return {
      id: `${subject}-${index + 1}`,
      prompt: `The following is a multiple choice question about ${title}.\n\n${row[0]}\n${options}\nAnswer with the letter of the correct option.`,
      choices: MMLU_LETTERS, gold: MMLU_LETTERS.indexOf(row[5]!),
    };
  });
}

const SENTIMENTS = ['negative', 'neutral', 'positive'];

/** Builds Financial PhraseBank items from the sentences all annotators labelled alike (ISO-8859-1, `sentence@label` lines). */
export async function financialPhrasebankTask(): Promise<TaskRow[]> {
  const name = 'financial_phrasebank/Sentences_AllAgree.txt';
  const lines = (await readDataFile(name)).toString('latin1').split(/\r?\n/).filter((line) => line.trim());
  return lines.map((line, index) => {
    const at = line.lastIndexOf('@');
    const label = line.slice(at + 1).trim();
    if (at < 0 || !SENTIMENTS.includes(label)) throw new Error(`${name} line ${index + 1}: expected "sentence@negative|neutral|positive"`);
    return {
      id: `fpb-${index + 1}`,
      prompt: `Classify the sentiment of this sentence from financial news as negative, neutral or positive.\n\nSentence: ${line.slice(0, at).trim()}`,
      choices: SENTIMENTS, gold: SENTIMENTS.indexOf(label),
    };
  });
}

/** Builds ARC items from the `{query, choices, gold}` lines; the query already reads "Question: …\nAnswer:". */
export async function arcTask(level: 'easy' | 'challenge'): Promise<TaskRow[]> {
  const name = `arc/arc_${level}.jsonl`;
  const lines = (await readDataFile(name)).toString('utf8').split('\n').filter((line) => line.trim());
  return lines.map((line, index) => {
    const item = JSON.parse(line) as { query: string; choices: string[]; gold: number };
    return { id: `arc-${level}-${index + 1}`, prompt: item.query.replace(/\s*Answer:\s*$/, ''), choices: item.choices, gold: item.gold };
  });
}

export interface SuiteTaskSpec { id: string; displayName: string; description: string; build: () => Promise<TaskRow[]>; numFewshot: number }
export interface SuiteSpec { id: string; displayName: string; description: string; domain: string; seed: number; tasks: SuiteTaskSpec[] }

const mmlu = (subject: string): SuiteTaskSpec => ({
  id: `mmlu-${subject.replaceAll('_', '-')}`,
  displayName: `MMLU: ${subject.replaceAll('_', ' ')} (test)`,
  description: `Four-option questions on ${subject.replaceAll('_', ' ')} from MMLU's test file; the answer is the option letter.`,
  build: () => mmluTask(subject),
  numFewshot: 0,
});

// NOTE: few-shot examples are drawn from a task's own other items, because tasks have no
// separate example file yet; the suites therefore run zero-shot.
export const SUITES: SuiteSpec[] = [
  {
    id: 'medical', displayName: 'Medical', domain: 'medical', seed: 1234,
    description: 'The held-out PubMedQA test split and the six medical MMLU subjects.',
    tasks: [
      { ...PUBMEDQA_TASK, build: async () => (await pubmedqaSplits()).task, numFewshot: 0 },
      ...['anatomy', 'clinical_knowledge', 'college_biology', 'college_medicine', 'medical_genetics', 'professional_medicine'].map(mmlu),
    ],
  },
  {
    id: 'finance', displayName: 'Finance', domain: 'finance', seed: 1234,
    description: 'Financial PhraseBank sentiment and the four economics and accounting MMLU subjects.',
    tasks: [
      { id: 'financial-phrasebank', displayName: 'Financial PhraseBank (all annotators agree, 2264 sentences)', description: 'Sentiment of sentences from financial news: negative, neutral or positive.', build: financialPhrasebankTask, numFewshot: 0 },
      ...['econometrics', 'high_school_macroeconomics', 'high_school_microeconomics', 'professional_accounting'].map(mmlu),
    ],
  },
  {
    id: 'general', displayName: 'General', domain: 'general', seed: 1234,
    description: 'ARC science questions and four general MMLU subjects, to measure what an adapter forgets.',
    tasks: [
      { id: 'arc-easy', displayName: 'ARC-Easy (test)', description: 'Grade-school science questions, easy set.', build: () => arcTask('easy'), numFewshot: 0 },
      { id: 'arc-challenge', displayName: 'ARC-Challenge (test)', description: 'Grade-school science questions that simple retrieval gets wrong.', build: () => arcTask('challenge'), numFewshot: 0 },
      ...['astronomy', 'computer_security', 'high_school_world_history', 'sociology'].map(mmlu),
    ],
  },
];

/**
 * Writes every task of the given suites into `dir`, registers the tasks and suites through the API
 * (admin token) and returns the registered suite versions. `limit` keeps only the first items of
 * each task, for tests and quick demos.
 */
export async function seedSuites(client: Client, dir: string, options: { suites?: string[]; limit?: number } = {}) {
  await fs.mkdir(dir, { recursive: true });
  const registered = [];
  for (const suite of SUITES.filter((s) => !options.suites || options.suites.includes(s.id))) {
    for (const task of suite.tasks) {
      const rows = (await task.build()).slice(0, options.limit);
      const file = path.join(dir, `${task.id}.jsonl`);
      await fs.writeFile(file, toJsonl(rows));
      await registerTaskFromFile(client, file, { id: task.id, displayName: task.displayName, description: task.description, domain: suite.domain });
    }
    registered.push(await client.evals.registerSuite.mutate({
      id: suite.id, displayName: suite.displayName, description: suite.description, domain: suite.domain, seed: suite.seed,
      tasks: suite.tasks.map((task) => ({ taskId: task.id, numFewshot: task.numFewshot, limit: null })),
    }));
  }
  return registered;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const url = process.env.APP_URL;
  const token = process.env.ADMIN_TOKEN;
  if (!url || !token) {
    console.error('error: set APP_URL (the app, e.g. http://127.0.0.1:3000) and ADMIN_TOKEN (an API token with the admin scope)');
    process.exit(1);
  }
  const { createClient } = await import('../lib/trpc-client');
  const dir = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '.data', 'suites');
  seedSuites(createClient({ url, token }), dir).then((suites) => console.log(JSON.stringify(suites)), (error: unknown) => {
    console.error(`error: ${(error as Error).message}`);
    process.exit(1);
  });
}
