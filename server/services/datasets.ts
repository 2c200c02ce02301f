import { and, desc, eq, sql } from 'drizzle-orm';
import { datasets, datasetVersions, namespaces } from '@/drizzle/schema';
import type { Db } from '../db';
import { getEnv } from '../env';
import { validateJsonlDataset } from '../formats/jsonl-dataset';
import { getObject } from '../storage';
import { baseModelTokenizer, getBaseModel } from './base-models';
import { badRequest, notFound } from './errors';
import type { VerifiedFile } from './uploads';

export const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;

/**
 * Rejects a data set file that createDatasetVersion would reject for its size or type. Called
 * before the upload too, so a file over the limit is never sent and hashed.
 */
export function checkDatasetFile(file: { path: string; size: number }): void {
  const limit = getEnv().DATASET_MAX_BYTES;
  if (file.size > limit) throw badRequest(`${file.path} is ${file.size} bytes; data sets are limited to ${limit} bytes here`);
  if (!/\.jsonl$/i.test(file.path)) throw badRequest(`${file.path}: only JSONL files (.jsonl) are accepted; put one JSON object per line`);
}

/**
 * Validates an uploaded JSONL file and stores it as the next version of a data set.
 * Invalid files are stored too, with their report, so the user can read every problem;
 * only valid versions can be used for training.
 */
export async function createDatasetVersion(db: Db, input: { namespaceId: string; name: string; file: VerifiedFile; baseModelId: string }) {
  if (!DATASET_NAME.test(input.name)) throw badRequest(`data set name ${JSON.stringify(input.name)} is invalid; use 1-96 letters, digits, dot, dash or underscore`);
  checkDatasetFile(input.file);

  const base = await getBaseModel(db, input.baseModelId);
  const tokenizer = await baseModelTokenizer(db, base);
  const bytes = await getObject(input.file.s3Key);
  const report = validateJsonlDataset(bytes, (text) => tokenizer.encode(text, { add_special_tokens: false }).ids.length);

  return db.transaction(async (tx) => {
    await tx.insert(datasets).values({ namespaceId: input.namespaceId, name: input.name }).onConflictDoNothing();
    const [dataset] = await tx.select().from(datasets).where(and(eq(datasets.namespaceId, input.namespaceId), eq(datasets.name, input.name))).for('update');
    const [{ next }] = await tx.select({ next: sql<number>`coalesce(max(${datasetVersions.version}), 0) + 1` }).from(datasetVersions).where(eq(datasetVersions.datasetId, dataset!.id)) as [{ next: number }];
    const [version] = await tx.insert(datasetVersions).values({
      datasetId: dataset!.id, version: Number(next), sha256: input.file.sha256, size: input.file.size, filename: input.file.path,
      valid: report.valid, report: { ...report, tokenizer: base.id },
    }).returning({ id: datasetVersions.id, version: datasetVersions.version });
    return { datasetVersionId: version!.id, version: version!.version, report };
  });
}

export async function getDatasetVersion(db: Db, id: number) {
  const [row] = await db.select({ version: datasetVersions, name: datasets.name, namespaceId: datasets.namespaceId, namespace: namespaces.name })
    .from(datasetVersions)
    .innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId))
    .innerJoin(namespaces, eq(namespaces.id, datasets.namespaceId))
    .where(eq(datasetVersions.id, id)).limit(1);
  if (!row) throw notFound(`data set version ${id}`);
  return row;
}

export async function listDatasets(db: Db, namespaceId: string) {
  return db.select({ id: datasetVersions.id, name: datasets.name, version: datasetVersions.version, valid: datasetVersions.valid, filename: datasetVersions.filename, createdAt: datasetVersions.createdAt })
    .from(datasetVersions).innerJoin(datasets, eq(datasets.id, datasetVersions.datasetId))
    .where(eq(datasets.namespaceId, namespaceId)).orderBy(desc(datasetVersions.createdAt)).limit(100);
}
