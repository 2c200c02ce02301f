/**
 * Demo and benchmark data from public sets, pinned by sha256: the PubMedQA expert-labelled
 * set (PQA-L) split into the 500 items outside the official test split (training) and the
 * 500 official test items (evaluation only).
 *
 * The files are read from DATA_DIR, or from ../shared/data beside the checkout. When neither
 * has them, they are downloaded from their public source and checked against the pins.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

const PUBMEDQA_COMMIT = '1cbae8e9';
export const PINNED = {
  'pubmedqa/ori_pqal.json': { sha256: '8b3276be8942ebbd77f3ddcda12c1749bf0e490045a736fd8438ee40cf37a41d', url: `https://raw.githubusercontent.com/pubmedqa/pubmedqa/${PUBMEDQA_COMMIT}/data/ori_pqal.json` },
  'pubmedqa/test_ground_truth.json': { sha256: '939fe566f09017d13b1ca64d2ddfee0bc2374b366048152997669cccedc44d51', url: `https://raw.githubusercontent.com/pubmedqa/pubmedqa/${PUBMEDQA_COMMIT}/data/test_ground_truth.json` },
} as const;

type PinnedName = keyof typeof PINNED;

/** Lists the folders searched for data files: DATA_DIR, then a `shared/data` folder beside the checkout. */
export function dataFolders(): string[] {
  return [process.env.DATA_DIR, path.join(root, '..', 'shared', 'data')].filter(Boolean) as string[];
}

function candidates(): string[] {
  return [...dataFolders(), path.join(root, '.data', 'downloads')];
}

/** Returns the bytes of a pinned file, from a local copy or its public source, verified. */
export async function readPinned(name: PinnedName): Promise<Buffer> {
  const pin = PINNED[name];
  for (const dir of candidates()) {
    const bytes = await fs.readFile(path.join(dir, name)).catch(() => null);
    if (!bytes) continue;
    const digest = createHash('sha256').update(bytes).digest('hex');
    if (digest !== pin.sha256) throw new Error(`${path.join(dir, name)} has sha256 ${digest}, expected ${pin.sha256}; delete it so a clean copy can be fetched`);
    return bytes;
  }

  const response = await fetch(pin.url);
  if (!response.ok) throw new Error(`could not download ${name} from ${pin.url} (HTTP ${response.status}); put the file under DATA_DIR instead`);
  const bytes = Buffer.from(await response.arrayBuffer());
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== pin.sha256) throw new Error(`downloaded ${name} has sha256 ${digest}, expected ${pin.sha256}`);
  const target = path.join(root, '.data', 'downloads', name);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.writeFile(target, bytes);
  return bytes;
}

interface PubmedItem { QUESTION: string; CONTEXTS: string[]; final_decision: 'yes' | 'no' | 'maybe'; LONG_ANSWER: string }

export const PUBMEDQA_CHOICES = ['yes', 'no', 'maybe'];

/** Builds the prompt shared by training and evaluation, so the adapter is scored on what it learned. */
export function pubmedqaPrompt(item: PubmedItem): string {
  return `Answer the biomedical research question using the abstract. Reply with yes, no or maybe.\n\nAbstract: ${item.CONTEXTS.join(' ')}\n\nQuestion: ${item.QUESTION}`;
}

export async function pubmedqaSplits() {
  const all = JSON.parse((await readPinned('pubmedqa/ori_pqal.json')).toString('utf8')) as Record<string, PubmedItem>;
  const test = JSON.parse((await readPinned('pubmedqa/test_ground_truth.json')).toString('utf8')) as Record<string, string>;
  const ids = Object.keys(all).sort();
  const trainIds = ids.filter((id) => !(id in test));
  const testIds = Object.keys(test).sort();
  if (trainIds.length !== 500 || testIds.length !== 500) throw new Error(`expected 500 training and 500 test PubMedQA items, got ${trainIds.length} and ${testIds.length}`);

  const train = trainIds.map((id) => ({ prompt: pubmedqaPrompt(all[id]!), completion: `${all[id]!.final_decision}. ${all[id]!.LONG_ANSWER}` }));
  const task = testIds.map((id) => {
    const label = test[id]!;
    if (all[id]!.final_decision !== label) throw new Error(`PubMedQA item ${id}: label ${all[id]!.final_decision} disagrees with the test ground truth ${label}`);
    return { id, prompt: pubmedqaPrompt(all[id]!), choices: PUBMEDQA_CHOICES, gold: PUBMEDQA_CHOICES.indexOf(label) };
  });
  return { train, task };
}

export function toJsonl(rows: unknown[]): string {
  return rows.map((row) => JSON.stringify(row)).join('\n') + '\n';
}

/** Writes the training set and the evaluation task as JSONL files into `dir`. */
export async function writeDemoData(dir: string): Promise<{ trainPath: string; taskPath: string; taskItems: number }> {
  const { train, task } = await pubmedqaSplits();
  await fs.mkdir(dir, { recursive: true });
  const trainPath = path.join(dir, 'pubmedqa-train.jsonl');
  const taskPath = path.join(dir, 'pubmedqa-test-task.jsonl');
  await fs.writeFile(trainPath, toJsonl(train));
  await fs.writeFile(taskPath, toJsonl(task));
  return { trainPath, taskPath, taskItems: task.length };
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const out = process.argv[2] ?? path.join(root, '.data', 'demo');
  writeDemoData(out).then((written) => console.log(JSON.stringify(written)), (error: unknown) => {
    console.error(`error: ${(error as Error).message}`);
    process.exit(1);
  });
}
