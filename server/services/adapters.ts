import { and, desc, eq, inArray, isNotNull, isNull, lt, sql } from 'drizzle-orm';
import {
  adapterFiles, adapterRedirects, adapters, type AdapterVisibility, adapterVersions, baseModels, benchmarkTasks, blobs, datasetVersions, downloadEvents, evalResults, likes, namespaces, edgeExports,
} from '@/drizzle/schema';
import type { Db } from '../db';
import { checkAdapter } from '../formats/adapter-gate';
import { parseModelCard } from '../formats/model-card';
import { PeftConfigError, parsePeftConfig } from '../formats/peft-config';
import { parseHeader, readHeaderLength, SafetensorsError } from '../formats/safetensors';
import { getEnv } from '../env';
import { logger } from '../logger';
import { deleteObject, getObject, getRange, presignGet } from '../storage';
import { getBaseModel } from './base-models';
import { badRequest, conflict, notFound } from './errors';
import { blobObjectKey, rejectPickles, type VerifiedFile } from './uploads';
import { canReadAdapter, readsNamespace, type Reader } from './visibility';

export const ADAPTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/;
const MAX_TEXT_FILE_BYTES = 1024 * 1024;
const MAX_LISTED_PROBLEMS = 20;

export interface PublishInput {
  namespaceId: string;
  name: string;
  baseModelId: string;
  files: VerifiedFile[];
  description?: string;
  domain?: string | null;
  lineage?: Record<string, unknown> | null;
  sourceJobId?: string | null;
  publishedBy?: string | null;
  // Optional semver label ("1.2.0") and release notes for this version.
  label?: string | null;
  changelog?: string | null;
  // Visibility of a new adapter ('public' when absent); given for an existing one, it changes it.
  visibility?: AdapterVisibility;
}

export const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

async function readText(file: VerifiedFile): Promise<string> {
  if (file.size > MAX_TEXT_FILE_BYTES) throw badRequest(`${file.path} is ${file.size} bytes; the limit is ${MAX_TEXT_FILE_BYTES}`);
  return (await getObject(file.s3Key)).toString('utf8');
}

/**
 * Checks an adapter against its base model and publishes it as the next version, whole
 * or not at all. With `sourceJobId`, a repeated call returns the version already
 * published for that job instead of adding another.
 */
export async function publishAdapterVersion(db: Db, input: PublishInput): Promise<{ versionId: number; version: number; warnings: string[] }> {
  if (!ADAPTER_NAME.test(input.name)) {
    throw badRequest(`adapter name ${JSON.stringify(input.name)} is invalid; use 1-96 letters, digits, dot, dash or underscore, starting with a letter or digit`);
  }
  if (input.label && !SEMVER.test(input.label)) {
    throw badRequest(`version label ${JSON.stringify(input.label)} is not a semantic version; use MAJOR.MINOR.PATCH such as 1.2.0 (or leave it out)`);
  }
  rejectPickles(input.files);
  const configFile = input.files.find((file) => file.path === 'adapter_config.json');
  const weightsFile = input.files.find((file) => file.path === 'adapter_model.safetensors');
  if (!configFile || !weightsFile) {
    throw badRequest('a PEFT adapter needs adapter_config.json and adapter_model.safetensors; save it with `model.save_pretrained(dir)`');
  }

  const base = await getBaseModel(db, input.baseModelId);

  let config;
  try {
    config = parsePeftConfig(await readText(configFile));
  } catch (error) {
    if (error instanceof PeftConfigError) throw badRequest(error.message.startsWith('adapter_config.json') ? error.message : `adapter_config.json: ${error.message}`);
    throw error;
  }

  let header;
  try {
    const headerLength = readHeaderLength(weightsFile.size >= 8 ? await getRange(weightsFile.s3Key, 0, 7) : new Uint8Array(0), weightsFile.size);
    const headerBytes = headerLength === 0 ? new Uint8Array(0) : await getRange(weightsFile.s3Key, 8, 8 + headerLength - 1);
    header = parseHeader(headerBytes, weightsFile.size);
  } catch (error) {
    if (error instanceof SafetensorsError) throw badRequest(`adapter_model.safetensors: ${error.message}`);
    throw error;
  }

  const compatibility = checkAdapter(config, header, base);
  if (compatibility.errors.length > 0) {
    const listed = compatibility.errors.slice(0, MAX_LISTED_PROBLEMS).join('; ');
    const more = compatibility.errors.length > MAX_LISTED_PROBLEMS ? ` (and ${compatibility.errors.length - MAX_LISTED_PROBLEMS} more)` : '';
    throw badRequest(`adapter does not fit base model ${base.id}: ${listed}${more}`);
  }

  const warnings = compatibility.warnings;
  const readme = input.files.find((file) => file.path === 'README.md');
  const modelCard = readme ? await readText(readme) : null;
  let cardMetadata: Record<string, unknown> = {};
  if (modelCard !== null) {
    const card = parseModelCard(modelCard);
    if (card.errors.length > 0) throw badRequest(card.errors.join('; '));
    warnings.push(...card.warnings);
    const cardBase = card.metadata.baseModel;
    // Cards name the Hub repository ("HuggingFaceTB/SmolLM2-135M-Instruct"); the catalogue id is its last part.
    const sameBase = (name: string) => name === base.id || name.split('/').pop()!.toLowerCase() === base.id.toLowerCase();
    if (cardBase.length > 0 && !cardBase.some(sameBase)) {
      warnings.push(`README.md names base_model ${cardBase.join(', ')}; the adapter was checked against ${base.id}`);
    }
    const { raw, ...fields } = card.metadata;
    cardMetadata = { ...fields, extra: raw };
  } else {
    warnings.push('the version has no README.md model card; add one with YAML front matter (base_model, library_name: peft, license, tags) so people can find and trust it');
  }
  const domain = input.domain ?? (typeof cardMetadata.domain === 'string' ? cardMetadata.domain : null);

  const configSummary = compatibility.summary;

  return db.transaction(async (tx) => {
    if (input.sourceJobId) {
      const [existing] = await tx.select({ id: adapterVersions.id, version: adapterVersions.version, warnings: adapterVersions.warnings })
        .from(adapterVersions).where(eq(adapterVersions.sourceJobId, input.sourceJobId)).limit(1);
      if (existing) return { versionId: existing.id, version: existing.version, warnings: existing.warnings };
    }

    await tx.insert(adapters).values({
      namespaceId: input.namespaceId, name: input.name, baseModelId: base.id, description: input.description ?? '', domain, visibility: input.visibility ?? 'public',
    }).onConflictDoNothing();
    // The row lock serialises concurrent publishes of one adapter, so version numbers never collide.
    const [adapter] = await tx.select().from(adapters)
      .where(and(eq(adapters.namespaceId, input.namespaceId), eq(adapters.name, input.name), isNull(adapters.deletedAt))).for('update');
    // A real adapter now has this name, so an old name that pointed elsewhere stops redirecting.
    const [owner] = await tx.select({ name: namespaces.name }).from(namespaces).where(eq(namespaces.id, input.namespaceId));
    await tx.delete(adapterRedirects).where(and(eq(adapterRedirects.namespace, owner!.name), eq(adapterRedirects.name, input.name)));
    if (adapter!.baseModelId !== base.id) {
      throw badRequest(`adapter ${input.name} is built on ${adapter!.baseModelId}; publish an adapter for ${base.id} under another name`);
    }
    const [{ next }] = await tx.select({ next: sql<number>`coalesce(max(${adapterVersions.version}), 0) + 1` }).from(adapterVersions).where(eq(adapterVersions.adapterId, adapter!.id)) as [{ next: number }];

    const [version] = await tx.insert(adapterVersions).values({
      adapterId: adapter!.id,
      version: Number(next),
      config: config.raw,
      configSummary,
      modelCard,
      cardMetadata,
      label: input.label ?? null,
      changelog: input.changelog ?? null,
      sizeBytes: input.files.reduce((sum, file) => sum + file.size, 0),
      warnings,
      lineage: input.lineage ?? null,
      sourceJobId: input.sourceJobId ?? null,
      publishedBy: input.publishedBy ?? null,
    }).returning({ id: adapterVersions.id, version: adapterVersions.version });

    await tx.insert(adapterFiles).values(input.files.map((file) => ({ versionId: version!.id, path: file.path, sha256: file.sha256, size: file.size })));
    const updates: Partial<typeof adapters.$inferInsert> = { updatedAt: new Date() };
    if (input.description) updates.description = input.description;
    if (domain) updates.domain = domain;
    if (input.visibility) updates.visibility = input.visibility;
    await tx.update(adapters).set(updates).where(eq(adapters.id, adapter!.id));
    await refreshListing(tx, adapter!.id);
    return { versionId: version!.id, version: version!.version, warnings };
  });
}

// The model card's first part is enough to find an adapter by its words; it keeps rows small.
const SEARCH_CARD_CHARS = 20_000;

/**
 * Copies the listing facts of an adapter's newest version that is not yanked onto the adapter
 * row, where search filters and sorts use them. Call after anything that changes versions,
 * names or scores.
 */
export async function refreshListing(db: Db, adapterId: string): Promise<void> {
  const [adapter] = await db.select({ name: adapters.name, description: adapters.description, domain: adapters.domain, namespace: namespaces.name })
    .from(adapters).innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId)).where(eq(adapters.id, adapterId));
  if (!adapter) return;
  const [latest] = await db.select().from(adapterVersions)
    .where(and(eq(adapterVersions.adapterId, adapterId), isNull(adapterVersions.yankedAt)))
    .orderBy(desc(adapterVersions.version)).limit(1);
  const [{ best }] = await db.select({ best: sql<number | null>`max(${evalResults.accuracy})` }).from(evalResults)
    .innerJoin(adapterVersions, eq(adapterVersions.id, evalResults.adapterVersionId))
    .where(eq(adapterVersions.adapterId, adapterId)) as [{ best: number | null }];

  const summary = (latest?.configSummary ?? {}) as { rank?: number; peftType?: string };
  const card = (latest?.cardMetadata ?? {}) as { license?: string | null; tags?: string[] };
  const tags = Array.isArray(card.tags) ? card.tags : [];
  const body = (latest?.modelCard ?? '').replace(/^\uFEFF?---[\s\S]*?\n---[ \t]*\r?\n/, '').slice(0, SEARCH_CARD_CHARS);
  await db.update(adapters).set({
    latestVersion: latest?.version ?? null,
    rank: typeof summary.rank === 'number' ? summary.rank : null,
    peftType: summary.peftType ?? null,
    taskType: typeof latest?.config.task_type === 'string' ? latest.config.task_type : null,
    license: typeof card.license === 'string' ? card.license : null,
    tags,
    sizeBytes: latest?.sizeBytes ?? null,
    bestScore: best === null ? null : Number(best),
    searchText: [adapter.namespace, adapter.name, adapter.description, adapter.domain ?? '', tags.join(' '), body].join(' '),
  }).where(eq(adapters.id, adapterId));
}

/**
 * Finds a live adapter by name, following the redirect an old name keeps after a rename or
 * transfer. `redirected` is true when the name given was an old one. A private adapter that
 * `reader` may not see is NOT_FOUND with the same message as a missing one, also through a redirect.
 */
export async function findAdapter(db: Db, namespace: string, name: string, reader: Reader) {
  const select = () => db.select({ adapter: adapters, namespace: namespaces.name, baseModelName: baseModels.displayName })
    .from(adapters)
    .innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .innerJoin(baseModels, eq(baseModels.id, adapters.baseModelId));
  const [row] = await select().where(and(eq(namespaces.name, namespace), eq(adapters.name, name), isNull(adapters.deletedAt))).limit(1);
  if (row) {
    if (!(await canReadAdapter(reader, row.adapter))) throw notFound(`adapter ${namespace}/${name}`);
    return { ...row, redirected: false };
  }

  const [redirect] = await db.select({ adapterId: adapterRedirects.adapterId }).from(adapterRedirects)
    .where(and(eq(adapterRedirects.namespace, namespace), eq(adapterRedirects.name, name))).limit(1);
  if (redirect) {
    const [moved] = await select().where(and(eq(adapters.id, redirect.adapterId), isNull(adapters.deletedAt))).limit(1);
    if (moved && await canReadAdapter(reader, moved.adapter)) return { ...moved, redirected: true };
  }
  throw notFound(`adapter ${namespace}/${name}`);
}

/** Loads an adapter's page at a version (the latest that is not yanked by default), as `reader` may see it. */
export async function getAdapterPage(db: Db, reader: Reader, requestedNamespace: string, requestedName: string, versionNumber?: number) {
  const { adapter, baseModelName, namespace, redirected } = await findAdapter(db, requestedNamespace, requestedName, reader);
  const name = adapter.name;
  const versions = await db.select({
    id: adapterVersions.id, version: adapterVersions.version, createdAt: adapterVersions.createdAt, downloads: adapterVersions.downloads,
    sourceJobId: adapterVersions.sourceJobId, label: adapterVersions.label, yanked: sql<boolean>`${adapterVersions.yankedAt} is not null`,
  }).from(adapterVersions).where(eq(adapterVersions.adapterId, adapter.id)).orderBy(desc(adapterVersions.version));
  if (versions.length === 0) throw notFound(`adapter ${namespace}/${name} has no versions yet; it`);

  // "Latest" skips yanked versions; an exact number still reaches them.
  const chosen = versionNumber === undefined ? versions.find((v) => !v.yanked) : versions.find((v) => v.version === versionNumber);
  if (!chosen) throw notFound(versionNumber === undefined ? `a version of ${namespace}/${name} that is not yanked` : `version ${versionNumber} of ${namespace}/${name}`);

  const [detail] = await db.select().from(adapterVersions).where(eq(adapterVersions.id, chosen.id));
  const files = await db.select({ path: adapterFiles.path, size: adapterFiles.size, sha256: adapterFiles.sha256 })
    .from(adapterFiles).where(eq(adapterFiles.versionId, chosen.id)).orderBy(adapterFiles.path);
  const scores = await db.select().from(evalResults).where(eq(evalResults.adapterVersionId, chosen.id)).orderBy(desc(evalResults.createdAt));

  // The training data set is private to its namespace even when the adapter is public, so its
  // name, hash and preparation stay out of the lineage that outsiders read.
  let lineage = detail!.lineage;
  if (lineage?.dataset && !(await readsNamespace(reader, adapter.namespaceId))) lineage = { ...lineage, dataset: { private: true } };

  return {
    adapterId: adapter.id,
    namespaceId: adapter.namespaceId,
    namespace,
    name: adapter.name,
    // The name asked for was an old one; `namespace`/`name` are the current ones.
    redirectedFrom: redirected ? `${requestedNamespace}/${requestedName}` : null,
    description: adapter.description,
    domain: adapter.domain,
    baseModelId: adapter.baseModelId,
    baseModelName,
    visibility: adapter.visibility,
    downloads: adapter.downloads,
    likes: adapter.likes,
    deprecation: adapter.deprecatedAt ? { message: adapter.deprecationMessage ?? '', replacedBy: adapter.replacedBy } : null,
    versions,
    version: {
      id: detail!.id, version: detail!.version, createdAt: detail!.createdAt, configSummary: detail!.configSummary,
      label: detail!.label, changelog: detail!.changelog, cardMetadata: detail!.cardMetadata, sizeBytes: detail!.sizeBytes,
      modelCard: detail!.modelCard, warnings: detail!.warnings, lineage, sourceJobId: detail!.sourceJobId,
      yanked: detail!.yankedAt ? { at: detail!.yankedAt, reason: detail!.yankReason ?? '' } : null,
    },
    files,
    scores: scores.map((s) => ({
      id: s.id, taskId: s.taskId, accuracy: s.accuracy, stderr: s.stderr, correct: s.correct, total: s.total, createdAt: s.createdAt,
      numFewshot: s.numFewshot, seed: s.seed, suiteId: s.suiteId, contaminated: s.contamination?.flagged === true,
    })),
  };
}

/**
 * Counts a download of a version: a client counts once per version and UTC day, however
 * many files, archives or retries it fetches.
 */
export async function countDownload(db: Db, input: { adapterId: string; versionId: number; clientKey?: string }): Promise<void> {
  const [first] = await db.insert(downloadEvents)
    .values({ versionId: input.versionId, clientKey: input.clientKey ?? 'anonymous', day: new Date().toISOString().slice(0, 10) })
    .onConflictDoNothing().returning({ versionId: downloadEvents.versionId });
  if (first) {
    await db.update(adapterVersions).set({ downloads: sql`${adapterVersions.downloads} + 1` }).where(eq(adapterVersions.id, input.versionId));
    await db.update(adapters).set({ downloads: sql`${adapters.downloads} + 1` }).where(eq(adapters.id, input.adapterId));
  }
}

/** Presigns one file of a version and counts the download. */
export async function downloadFile(db: Db, reader: Reader, input: { namespace: string; name: string; version?: number; path: string; clientKey?: string }) {
  const page = await getAdapterPage(db, reader, input.namespace, input.name, input.version);
  const file = page.files.find((f) => f.path === input.path);
  if (!file) throw notFound(`file ${input.path} in ${input.namespace}/${input.name} version ${page.version.version}`);
  await countDownload(db, { adapterId: page.adapterId, versionId: page.version.id, clientKey: input.clientKey });

  const warning = page.version.yanked ? `version ${page.version.version} of ${input.namespace}/${input.name} was yanked: ${page.version.yanked.reason}` : null;
  return { url: await presignGet(await blobObjectKey(db, file.sha256), file.path), sha256: file.sha256, size: file.size, version: page.version.version, warning };
}

/** Loads an adapter of the caller's own namespace; another namespace's adapter is NOT_FOUND to it. */
async function ownAdapter(db: Db, namespaceId: string, namespace: string, name: string) {
  // Authorization already gave the caller a role in `namespaceId`, which may see its private adapters.
  const found = await findAdapter(db, namespace, name, 'internal');
  if (found.adapter.namespaceId !== namespaceId) throw notFound(`adapter ${namespace}/${name} in your namespace`);
  return found.adapter;
}

/** Yanks a version: it leaves "latest" and listings, and downloads by number carry a warning. */
export async function yankVersion(db: Db, input: { namespaceId: string; namespace: string; name: string; version: number; reason: string }) {
  const adapter = await ownAdapter(db, input.namespaceId, input.namespace, input.name);
  const [yanked] = await db.update(adapterVersions).set({ yankedAt: sql`now()`, yankReason: input.reason })
    .where(and(eq(adapterVersions.adapterId, adapter.id), eq(adapterVersions.version, input.version)))
    .returning({ version: adapterVersions.version });
  if (!yanked) throw notFound(`version ${input.version} of ${input.namespace}/${input.name}`);
  await refreshListing(db, adapter.id);
  return { version: yanked.version };
}

/** Marks an adapter deprecated, optionally naming its replacement as `namespace/name`. */
export async function deprecateAdapter(db: Db, reader: Reader, input: { namespaceId: string; namespace: string; name: string; message: string; replacedBy: string | null }) {
  const adapter = await ownAdapter(db, input.namespaceId, input.namespace, input.name);
  if (input.replacedBy) {
    const [replacementNamespace, replacementName] = input.replacedBy.split('/');
    if (!replacementNamespace || !replacementName) throw badRequest(`replacement ${JSON.stringify(input.replacedBy)} must be written namespace/name`);
    await findAdapter(db, replacementNamespace, replacementName, reader);
  }
  await db.update(adapters).set({ deprecatedAt: sql`now()`, deprecationMessage: input.message, replacedBy: input.replacedBy }).where(eq(adapters.id, adapter.id));
  return { deprecated: true };
}

/** Likes or unlikes an adapter for a user; returns the new like count. Repeating a like changes nothing. */
export async function setLike(db: Db, reader: Reader, input: { userId: string; namespace: string; name: string; liked: boolean }) {
  const { adapter } = await findAdapter(db, input.namespace, input.name, reader);
  return db.transaction(async (tx) => {
    const changed = input.liked
      ? await tx.insert(likes).values({ userId: input.userId, adapterId: adapter.id }).onConflictDoNothing().returning({ userId: likes.userId })
      : await tx.delete(likes).where(and(eq(likes.userId, input.userId), eq(likes.adapterId, adapter.id))).returning({ userId: likes.userId });
    let delta = 0;
    if (changed.length > 0) delta = input.liked ? 1 : -1;
    const [updated] = await tx.update(adapters).set({ likes: sql`${adapters.likes} + ${delta}` }).where(eq(adapters.id, adapter.id)).returning({ likes: adapters.likes });
    return { liked: input.liked, likes: updated!.likes };
  });
}

/**
 * Soft-deletes an adapter. It disappears from pages, listings and downloads at once, and its
 * name is free again. The owner can restore it until the retention period ends.
 */
export async function deleteAdapter(db: Db, input: { namespaceId: string; namespace: string; name: string }) {
  const adapter = await ownAdapter(db, input.namespaceId, input.namespace, input.name);
  const [deleted] = await db.update(adapters).set({ deletedAt: sql`now()` }).where(eq(adapters.id, adapter.id)).returning({ deletedAt: adapters.deletedAt });
  const days = getEnv().DELETED_ADAPTER_RETENTION_DAYS;
  const purgeAfter = new Date(deleted!.deletedAt!.getTime() + days * 86_400_000);
  logger.info({ adapterId: adapter.id, purgeAfter }, 'adapter deleted');
  return { deleted: true, restorableUntil: purgeAfter.toISOString() };
}

/** Restores the most recently deleted adapter of that name, unless its files were purged or the name was taken since. */
export async function restoreAdapter(db: Db, input: { namespaceId: string; namespace: string; name: string }) {
  const [adapter] = await db.select().from(adapters)
    .where(and(eq(adapters.namespaceId, input.namespaceId), eq(adapters.name, input.name), isNotNull(adapters.deletedAt), isNull(adapters.purgedAt)))
    .orderBy(desc(adapters.deletedAt)).limit(1);
  if (!adapter) throw notFound(`deleted adapter ${input.namespace}/${input.name} that can still be restored`);
  const [taken] = await db.select({ id: adapters.id }).from(adapters)
    .where(and(eq(adapters.namespaceId, input.namespaceId), eq(adapters.name, input.name), isNull(adapters.deletedAt))).limit(1);
  if (taken) throw conflict(`${input.namespace}/${input.name} is in use by another adapter now; rename that one first, then restore`);
  await db.update(adapters).set({ deletedAt: null }).where(eq(adapters.id, adapter.id));
  return { restored: true };
}

/**
 * Removes the files of adapters deleted longer ago than the retention period: their file
 * rows, and each blob (row and S3 object) that nothing else refers to. The adapter and
 * version rows stay as tombstones, because jobs and results point at them. Runs a few at a
 * time before uploads, so no timer process is needed.
 */
export async function purgeDeletedAdapters(db: Db, batch = 5): Promise<number> {
  const days = getEnv().DELETED_ADAPTER_RETENTION_DAYS;
  const due = await db.select({ id: adapters.id }).from(adapters)
    .where(and(isNotNull(adapters.deletedAt), isNull(adapters.purgedAt), lt(adapters.deletedAt, sql`now() - make_interval(secs => ${days * 86400})`)))
    .limit(batch);
  for (const { id } of due) {
    const removed = await db.transaction(async (tx) => {
      const versionIds = tx.select({ id: adapterVersions.id }).from(adapterVersions).where(eq(adapterVersions.adapterId, id));
      const files = await tx.delete(adapterFiles).where(inArray(adapterFiles.versionId, versionIds)).returning({ sha256: adapterFiles.sha256 });
      // Edge bundles are derived from the versions' files, so they go with them.
      const bundles = await tx.delete(edgeExports).where(inArray(edgeExports.versionId, versionIds)).returning({ files: edgeExports.files });
      files.push(...bundles.flatMap((bundle) => bundle.files.map((file) => ({ sha256: file.sha256 }))));
      await tx.delete(likes).where(eq(likes.adapterId, id));
      await tx.delete(adapterRedirects).where(eq(adapterRedirects.adapterId, id));
      await tx.update(adapters).set({ purgedAt: sql`now()` }).where(eq(adapters.id, id));
      const hashes = [...new Set(files.map((file) => file.sha256))];
      if (hashes.length === 0) return [];
      // A blob is shared by content: keep it while any version, data set, task or base model uses it.
      return tx.delete(blobs).where(and(
        inArray(blobs.sha256, hashes),
        sql`not exists (select 1 from ${adapterFiles} where ${adapterFiles.sha256} = ${blobs.sha256})`,
        sql`not exists (select 1 from ${edgeExports}, jsonb_array_elements(${edgeExports.files}) f where f->>'sha256' = ${blobs.sha256})`,
        sql`not exists (select 1 from ${datasetVersions} where ${datasetVersions.sha256} = ${blobs.sha256})`,
        // A data set version's lineage also points at blobs: its uploaded CSV/TSV and its validation part.
        sql`not exists (select 1 from ${datasetVersions} where ${datasetVersions.lineage}->'upload'->>'sha256' = ${blobs.sha256} or ${datasetVersions.lineage}->'split'->>'validationSha256' = ${blobs.sha256})`,
        sql`not exists (select 1 from ${benchmarkTasks} where ${benchmarkTasks.dataSha256} = ${blobs.sha256})`,
        sql`not exists (select 1 from ${baseModels}, jsonb_array_elements(${baseModels.files}) f where f->>'sha256' = ${blobs.sha256})`,
      )).returning({ s3Key: blobs.s3Key });
    });
    for (const blob of removed) await deleteObject(blob.s3Key);
    logger.info({ adapterId: id, objects: removed.length }, 'deleted adapter purged');
  }
  return due.length;
}

/**
 * Renames an adapter or moves it to another namespace the caller may publish to. The old
 * name keeps redirecting to it until another adapter takes that name.
 */
export async function renameAdapter(db: Db, input: { namespaceId: string; namespace: string; name: string; newNamespaceId: string; newName: string }) {
  if (!ADAPTER_NAME.test(input.newName)) {
    throw badRequest(`adapter name ${JSON.stringify(input.newName)} is invalid; use 1-96 letters, digits, dot, dash or underscore, starting with a letter or digit`);
  }
  const adapter = await ownAdapter(db, input.namespaceId, input.namespace, input.name);
  const [oldNamespace] = await db.select({ name: namespaces.name }).from(namespaces).where(eq(namespaces.id, adapter.namespaceId));
  const [target] = await db.select({ name: namespaces.name }).from(namespaces).where(eq(namespaces.id, input.newNamespaceId));
  if (!target) throw notFound(`namespace ${input.newNamespaceId}`);
  if (adapter.namespaceId === input.newNamespaceId && adapter.name === input.newName) throw badRequest(`${target.name}/${input.newName} is already this adapter's name`);

  await db.transaction(async (tx) => {
    const [taken] = await tx.select({ id: adapters.id }).from(adapters)
      .where(and(eq(adapters.namespaceId, input.newNamespaceId), eq(adapters.name, input.newName), isNull(adapters.deletedAt))).limit(1);
    if (taken) throw conflict(`${target.name}/${input.newName} already exists; choose another name`);
    await tx.update(adapters).set({ namespaceId: input.newNamespaceId, name: input.newName, updatedAt: new Date() }).where(eq(adapters.id, adapter.id));
    await tx.delete(adapterRedirects).where(and(eq(adapterRedirects.namespace, target.name), eq(adapterRedirects.name, input.newName)));
    await tx.insert(adapterRedirects).values({ namespace: oldNamespace!.name, name: adapter.name, adapterId: adapter.id })
      .onConflictDoUpdate({ target: [adapterRedirects.namespace, adapterRedirects.name], set: { adapterId: adapter.id, createdAt: new Date() } });
    await refreshListing(tx, adapter.id);
  });
  return { namespace: target.name, name: input.newName, redirectsFrom: `${oldNamespace!.name}/${adapter.name}` };
}

/** Makes an adapter public or private; returns the visibility before and after. */
export async function setVisibility(db: Db, input: { namespaceId: string; namespace: string; name: string; visibility: AdapterVisibility }) {
  const adapter = await ownAdapter(db, input.namespaceId, input.namespace, input.name);
  await db.update(adapters).set({ visibility: input.visibility }).where(eq(adapters.id, adapter.id));
  logger.info({ adapterId: adapter.id, from: adapter.visibility, to: input.visibility }, 'adapter visibility changed');
  return { namespace: input.namespace, name: adapter.name, previous: adapter.visibility, visibility: input.visibility };
}
