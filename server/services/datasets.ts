import { createHash } from 'node:crypto';
import { and, desc, eq, sql } from 'drizzle-orm';
import { blobs, datasets, datasetVersions, namespaces } from '@/drizzle/schema';
import generalSet from '../data/self-instruct-seed.json';
import type { Db } from '../db';
import { getEnv } from '../env';
import { cleanExamples, splitExamples, type CleaningCounts, type CleaningOptions } from '../formats/dataset-clean';
import { fileTypeOf, parseDataset, toJsonl, type ColumnMapping, type DatasetReport, type Example, type TokenCounter } from '../formats/dataset-file';
import { mixGeneral } from '../formats/dataset-mix';
import { chatTemplateOf, createTokenCounter, memoizeCounter, specialTokensOf } from '../formats/token-counter';
import { blobKey, getObject, putObject } from '../storage';
import { baseModelTokenizer, getBaseModel } from './base-models';
import { badRequest, notFound } from './errors';
import { blobObjectKey, type VerifiedFile } from './uploads';

export const DATASET_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
// Used for the over-long check when the caller names no maximum sequence length.
export const DEFAULT_MAX_SEQ_LENGTH = 512;
export const GENERAL_SET = 'self-instruct-seed';

export interface DatasetLineage {
  // A CSV or TSV upload: the file as uploaded and the mapping that turned it into JSONL.
  upload?: { filename: string; sha256: string; fileType: string; mapping: ColumnMapping };
  // A derived version: its source and what was done to it.
  derivedFrom?: { datasetVersionId: number; name: string; version: number; sha256: string };
  cleaning?: { options: CleaningOptions; counts: CleaningCounts; before: number; after: number; maxSeqLength: number };
  split?: { validationFraction: number; seed: number; train: number; validation: number; validationSha256: string | null };
  mix?: { source: string; sourceSha256: string; license: string | null; ratio: number; seed: number; count: number; requested: number };
}

/**
 * Rejects a data set file that createDatasetVersion would reject for its size or type. Called
 * before the upload too, so a file over the limit is never sent and hashed.
 */
export function checkDatasetFile(file: { path: string; size: number }): void {
  const limit = getEnv().DATASET_MAX_BYTES;
  if (file.size > limit) throw badRequest(`${file.path} is ${file.size} bytes; data sets are limited to ${limit} bytes here`);
  if (!fileTypeOf(file.path)) throw badRequest(`${file.path}: only JSONL (.jsonl), CSV (.csv) and TSV (.tsv) files are accepted`);
}

/**
 * Validates an uploaded JSONL, CSV or TSV file and stores it as the next version of a data set.
 * A CSV or TSV file is stored as the JSONL the worker reads, with the upload in its lineage.
 * Invalid files are stored too, with their report, so the user can read every problem;
 * only valid versions can be used for training.
 */
export async function createDatasetVersion(db: Db, input: {
  namespaceId: string; name: string; file: VerifiedFile; baseModelId: string; mapping?: ColumnMapping; maxSeqLength?: number;
}) {
  if (!DATASET_NAME.test(input.name)) throw badRequest(`data set name ${JSON.stringify(input.name)} is invalid; use 1-96 letters, digits, dot, dash or underscore`);
  checkDatasetFile(input.file);
  const fileType = fileTypeOf(input.file.path)!;
  if (fileType === 'jsonl' && input.mapping && Object.keys(input.mapping).length > 0) throw badRequest('a column mapping applies to CSV and TSV files only; JSONL lines name their fields');

  const maxSeqLength = input.maxSeqLength ?? DEFAULT_MAX_SEQ_LENGTH;
  const counter = await tokenCounterFor(db, input.baseModelId);
  const bytes = await getObject(input.file.s3Key);
  const { report, examples } = parseDataset(bytes, { fileType, mapping: input.mapping, counter, maxSeqLength });

  let stored = { sha256: input.file.sha256, size: input.file.size, filename: input.file.path };
  let lineage: DatasetLineage | null = null;
  if (fileType !== 'jsonl') {
    lineage = { upload: { filename: input.file.path, sha256: input.file.sha256, fileType, mapping: input.mapping ?? {} } };
    if (report.valid) {
      const converted = await storeJsonl(db, examples.map((e) => e.example));
      stored = { ...converted, filename: input.file.path.replace(/\.(csv|tsv)$/i, '.jsonl') };
    }
  }
  return insertVersion(db, { namespaceId: input.namespaceId, name: input.name, stored, report: { ...report, tokenizer: input.baseModelId }, lineage });
}

/**
 * Derives a new version of a data set from a stored one: cleaning, then a seeded
 * train/validation split, then general data mixed into the training part. The new version's
 * file is the training part; the validation part is stored beside it, content-addressed.
 *
 * The whole file is handled in this request, so sources are capped at DATASET_DERIVE_MAX_BYTES
 * (2 MiB by default) to stay inside the web tier's 30 s default time limit. Tokenizing is the
 * slow part: 5,000 Alpaca examples (1.9 MiB) took 12 s to count and 4.4 s to clean on a
 * shared 2-core machine (docs/datasets.md).
 */
export async function deriveDatasetVersion(db: Db, input: {
  namespaceId: string; sourceVersionId: number; baseModelId: string; maxSeqLength: number; cleaning: CleaningOptions;
  split: { validationFraction: number; seed: number } | null;
  mix: { source: typeof GENERAL_SET | { datasetVersionId: number }; ratio: number; seed: number } | null;
}) {
  const source = await getDatasetVersion(db, input.sourceVersionId);
  if (source.namespaceId !== input.namespaceId) throw notFound(`data set version ${input.sourceVersionId}`);
  const limit = getEnv().DATASET_DERIVE_MAX_BYTES;
  if (source.version.size > limit) {
    throw badRequest(`data set version ${input.sourceVersionId} is ${source.version.size} bytes; cleaning and mixing on the server handle up to ${limit} bytes, so clean larger files before upload`);
  }

  const counter = memoizeCounter(await tokenCounterFor(db, input.baseModelId));
  const examples = await readTrainingExamples(db, source, true);
  const cleaned = cleanExamples(examples.items, input.cleaning, { counter, maxSeqLength: input.maxSeqLength });
  const lineage: DatasetLineage = {
    derivedFrom: { datasetVersionId: source.version.id, name: `${source.namespace}/${source.name}`, version: source.version.version, sha256: source.version.sha256 },
    cleaning: { options: input.cleaning, counts: cleaned.counts, before: examples.items.length, after: cleaned.examples.length, maxSeqLength: input.maxSeqLength },
  };

  let train: Example[] = cleaned.examples.map((item) => item.example);
  if (input.split && input.split.validationFraction > 0) {
    const parts = splitExamples(train, input.split.validationFraction, input.split.seed);
    train = parts.train;
    const validation = parts.validation.length > 0 ? await storeJsonl(db, parts.validation) : null;
    lineage.split = { ...input.split, train: parts.train.length, validation: parts.validation.length, validationSha256: validation?.sha256 ?? null };
  }

  if (input.mix && input.mix.ratio > 0) {
    const general = await generalExamples(db, input.namespaceId, input.mix.source);
    let mixed;
    try {
      mixed = mixGeneral(train, examples.format, general.examples, input.mix.ratio, input.mix.seed);
    } catch (error) {
      throw badRequest((error as Error).message);
    }
    train = mixed.examples;
    lineage.mix = { source: general.name, sourceSha256: general.sha256, license: general.license, ratio: input.mix.ratio, seed: input.mix.seed, count: mixed.count, requested: mixed.requested };
  }

  const body = Buffer.from(toJsonl(train), 'utf8');
  const { report } = parseDataset(body, { counter, maxSeqLength: input.maxSeqLength });
  const stored = await storeJsonl(db, train);
  return insertVersion(db, {
    namespaceId: input.namespaceId, name: source.name, report: { ...report, tokenizer: input.baseModelId }, lineage,
    stored: { ...stored, filename: source.version.filename.replace(/(\.[^.]+)?$/, '.derived.jsonl') },
  });
}

async function insertVersion(db: Db, input: {
  namespaceId: string; name: string; stored: { sha256: string; size: number; filename: string }; report: DatasetReport & { tokenizer: string }; lineage: DatasetLineage | null;
}) {
  return db.transaction(async (tx) => {
    await tx.insert(datasets).values({ namespaceId: input.namespaceId, name: input.name }).onConflictDoNothing();
    const [dataset] = await tx.select().from(datasets).where(and(eq(datasets.namespaceId, input.namespaceId), eq(datasets.name, input.name))).for('update');
    const [{ next }] = await tx.select({ next: sql<number>`coalesce(max(${datasetVersions.version}), 0) + 1` }).from(datasetVersions).where(eq(datasetVersions.datasetId, dataset!.id)) as [{ next: number }];
    const [version] = await tx.insert(datasetVersions).values({
      datasetId: dataset!.id, version: Number(next), ...input.stored, valid: input.report.valid,
      report: input.report as unknown as Record<string, unknown>, lineage: input.lineage as Record<string, unknown> | null,
    }).returning({ id: datasetVersions.id, version: datasetVersions.version });
    return { datasetVersionId: version!.id, version: version!.version, report: input.report, lineage: input.lineage };
  });
}

/** Writes examples as JSONL at their content address, once per sha256. */
async function storeJsonl(db: Db, examples: Example[]): Promise<{ sha256: string; size: number }> {
  const body = Buffer.from(toJsonl(examples), 'utf8');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const [known] = await db.select({ sha256: blobs.sha256 }).from(blobs).where(eq(blobs.sha256, sha256)).limit(1);
  if (!known) {
    await putObject(blobKey(sha256), body);
    await db.insert(blobs).values({ sha256, size: body.length, s3Key: blobKey(sha256) }).onConflictDoNothing();
  }
  return { sha256, size: body.length };
}

/** Parses a stored version's training file; empty fields are kept when `allowEmpty`, so cleaning can drop them. */
async function readTrainingExamples(db: Db, source: Awaited<ReturnType<typeof getDatasetVersion>>, allowEmpty: boolean) {
  const bytes = await getObject(await blobObjectKey(db, source.version.sha256));
  // A valid CSV or TSV upload is stored as JSONL under a .jsonl name. An invalid one keeps its
  // own name, so it is parsed again with the mapping from its lineage.
  const fileType = fileTypeOf(source.version.filename) ?? 'jsonl';
  const mapping = (source.version.lineage as DatasetLineage | null)?.upload?.mapping;
  const parsed = parseDataset(bytes, { fileType, mapping, allowEmptyFields: allowEmpty });
  if (parsed.report.errorCount > 0) {
    const first = parsed.report.errors[0]!;
    throw badRequest(`data set ${source.name} version ${source.version.version} has ${parsed.report.errorCount} ${parsed.report.errorCount === 1 ? 'problem' : 'problems'} that cleaning cannot fix (first: ${first.line === null ? '' : `line ${first.line}: `}${first.message}); fix the file and upload it again`);
  }
  return { items: parsed.examples, format: parsed.report.format! };
}

async function generalExamples(db: Db, namespaceId: string, source: typeof GENERAL_SET | { datasetVersionId: number }) {
  if (source === GENERAL_SET) {
    const examples = generalSet.examples as Example[];
    return { name: `bundled:${GENERAL_SET}`, examples, sha256: createHash('sha256').update(toJsonl(examples)).digest('hex'), license: 'Apache-2.0' };
  }
  const version = await getDatasetVersion(db, source.datasetVersionId);
  if (version.namespaceId !== namespaceId) throw notFound(`data set version ${source.datasetVersionId}`);
  if (!version.version.valid) throw badRequest(`data set ${version.name} version ${version.version.version} failed validation, so it cannot be mixed in`);
  const parsed = await readTrainingExamples(db, version, false);
  return { name: `${version.namespace}/${version.name}@${version.version.version}`, examples: parsed.items.map((item) => item.example), sha256: version.version.sha256, license: null };
}

/** Builds the token counter of a base model: its tokenizer and chat template, read from S3. */
export async function tokenCounterFor(db: Db, baseModelId: string): Promise<TokenCounter> {
  const base = await getBaseModel(db, baseModelId);
  const tokenizer = await baseModelTokenizer(db, base);
  const read = async (path: string) => {
    const file = base.files.find((f) => f.path === path);
    return file ? (await getObject(await blobObjectKey(db, file.sha256))).toString('utf8') : null;
  };
  const config = JSON.parse((await read('tokenizer_config.json'))!) as Record<string, unknown>;
  const template = chatTemplateOf(config, await read('chat_template.jinja'));
  if (!template) throw badRequest(`base model ${baseModelId} has no chat template, so examples cannot be rendered and counted; register an instruct model`);
  return createTokenCounter(tokenizer, template, specialTokensOf(config));
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
