import readline from 'node:readline';
import { eq } from 'drizzle-orm';
import { adapterVersions, benchmarkTasks, blobs } from '@/drizzle/schema';
import { jsonStrings, OverlapIndex, type OverlapReport } from '../formats/ngram-overlap';
import { getObject, getObjectStream } from '../storage';
import type { Db } from '../db';
import { logger } from '../logger';
import { blobObjectKey } from './uploads';

/**
 * Max training data bytes scanned per check. Uploads are capped by DATASET_MAX_BYTES (64 MiB
 * by default), so this bound matters only if that setting grows. A larger file is reported as
 * skipped rather than partly scanned.
 */
const MAX_TRAINING_BYTES = 256 * 1024 * 1024;

export type ContaminationReport =
  | (OverlapReport & { status: 'checked'; datasetSha256: string })
  | { status: 'skipped'; reason: string };

/** Extracts the text a data set line trains on: prompt and completion, message contents, or text. */
function trainingText(line: string): string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return line;
  }
  if (value === null || typeof value !== 'object') return '';
  const row = value as { prompt?: unknown; completion?: unknown; messages?: unknown; text?: unknown };
  if (Array.isArray(row.messages)) {
    return row.messages.map((message) => (message && typeof message === 'object' && typeof message.content === 'string' ? message.content : '')).join(' ');
  }
  if (typeof row.prompt === 'string' || typeof row.completion === 'string') return `${row.prompt ?? ''} ${row.completion ?? ''}`;
  if (typeof row.text === 'string') return row.text;
  return jsonStrings(value).join(' ');
}

/** Joins the text of a task item that a model could have memorised: its prompt and its gold answer. */
function itemText(item: { prompt?: unknown; choices?: unknown; gold?: unknown }): string {
  const gold = Array.isArray(item.choices) && typeof item.gold === 'number' ? item.choices[item.gold] : '';
  return `${typeof item.prompt === 'string' ? item.prompt : ''} ${typeof gold === 'string' ? gold : ''}`;
}

/**
 * Measures the n-gram overlap between the training data of an adapter version trained here
 * (its lineage names the data set file) and the first `itemLimit` items of a task, the items
 * the evaluation scored. Returns null for a version without training lineage. Runs on the
 * server when the result is recorded: the task's n-grams stay in memory and the training file
 * streams through line by line, so memory stays near the task's size.
 */
export async function measureContamination(db: Db, input: { adapterVersionId: number; taskId: string; taskVersion: number; itemLimit: number | null }): Promise<ContaminationReport | null> {
  const [version] = await db.select({ lineage: adapterVersions.lineage }).from(adapterVersions).where(eq(adapterVersions.id, input.adapterVersionId));
  const datasetSha256 = (version?.lineage as { dataset?: { sha256?: unknown } } | null)?.dataset?.sha256;
  if (typeof datasetSha256 !== 'string') return null;

  const [task] = await db.select({ version: benchmarkTasks.version, dataSha256: benchmarkTasks.dataSha256 }).from(benchmarkTasks).where(eq(benchmarkTasks.id, input.taskId));
  if (!task || task.version !== input.taskVersion) return { status: 'skipped', reason: `task ${input.taskId} moved to version ${task?.version ?? 'none'} after version ${input.taskVersion} was scored` };
  const [blob] = await db.select({ size: blobs.size }).from(blobs).where(eq(blobs.sha256, datasetSha256));
  if (!blob) return { status: 'skipped', reason: `training data ${datasetSha256} is no longer stored` };
  if (blob.size > MAX_TRAINING_BYTES) return { status: 'skipped', reason: `training data is ${blob.size} bytes; the check reads at most ${MAX_TRAINING_BYTES}` };

  const lines = (await getObject(await blobObjectKey(db, task.dataSha256))).toString('utf8').split('\n').filter((line) => line.trim() !== '');
  const items = lines.slice(0, input.itemLimit ?? undefined).map((line, index) => {
    const item = JSON.parse(line) as { id?: unknown; prompt?: unknown; choices?: unknown; gold?: unknown };
    return { id: typeof item.id === 'string' ? item.id : `line ${index + 1}`, text: itemText(item) };
  });
  const index = new OverlapIndex(items);

  const started = Date.now();
  const stream = await getObjectStream(await blobObjectKey(db, datasetSha256));
  for await (const line of readline.createInterface({ input: stream, crlfDelay: Infinity })) {
    if (line.trim() !== '') index.scan(trainingText(line));
  }
  const report = index.report();
  logger.info({ adapterVersionId: input.adapterVersionId, taskId: input.taskId, overlap: report.overlap, flagged: report.flagged, ms: Date.now() - started }, 'contamination measured');
  return { status: 'checked', datasetSha256, ...report };
}
