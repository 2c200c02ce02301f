import { and, desc, eq, ilike, or, sql, type SQL } from 'drizzle-orm';
import { adapterFiles, adapters, adapterVersions, baseModels, downloadEvents, evalResults, likes, namespaces } from '@/drizzle/schema';
import type { Db } from '../db';
import { PeftConfigError, parsePeftConfig } from '../formats/peft-config';
import { checkLoraTensors } from '../formats/lora-tensors';
import { servingTargets } from '../formats/serving';
import { parseHeader, readHeaderLength, SafetensorsError } from '../formats/safetensors';
import { getObject, getRange, presignGet } from '../storage';
import { getBaseModel } from './base-models';
import { badRequest, notFound } from './errors';
import { blobObjectKey, rejectPickles, type VerifiedFile } from './uploads';

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
}

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

  const compatibility = checkLoraTensors(header.tensors, config, base.modules);
  if (compatibility.errors.length > 0) {
    const listed = compatibility.errors.slice(0, MAX_LISTED_PROBLEMS).join('; ');
    const more = compatibility.errors.length > MAX_LISTED_PROBLEMS ? ` (and ${compatibility.errors.length - MAX_LISTED_PROBLEMS} more)` : '';
    throw badRequest(`adapter does not fit base model ${base.id}: ${listed}${more}`);
  }

  const warnings = [...config.warnings];
  if (config.baseModelNameOrPath && config.baseModelNameOrPath !== base.id) {
    warnings.push(`adapter_config.json names base model ${JSON.stringify(config.baseModelNameOrPath)}; it was checked against ${base.id}`);
  }
  const readme = input.files.find((file) => file.path === 'README.md');
  const modelCard = readme ? await readText(readme) : null;

  const ranks = [...new Set(compatibility.modules.map((m) => m.rank))].sort((a, b) => a - b);
  const configSummary = {
    peftType: config.peftType,
    peftVersion: typeof config.raw.peft_version === 'string' ? config.raw.peft_version : null,
    rank: config.rank,
    ranks,
    alpha: config.alpha,
    targetModules: config.targetModules,
    useRslora: config.useRslora,
    useDora: config.useDora,
    modulesToSave: config.modulesToSave,
    baseModelNameOrPath: config.baseModelNameOrPath,
    loraModules: compatibility.modules.length,
    trainableParameters: compatibility.trainableParameters,
    shareOfBase: compatibility.trainableParameters / base.parameterCount,
    serving: servingTargets(config, ranks),
  };

  return db.transaction(async (tx) => {
    if (input.sourceJobId) {
      const [existing] = await tx.select({ id: adapterVersions.id, version: adapterVersions.version, warnings: adapterVersions.warnings })
        .from(adapterVersions).where(eq(adapterVersions.sourceJobId, input.sourceJobId)).limit(1);
      if (existing) return { versionId: existing.id, version: existing.version, warnings: existing.warnings };
    }

    await tx.insert(adapters).values({
      namespaceId: input.namespaceId, name: input.name, baseModelId: base.id, description: input.description ?? '', domain: input.domain ?? null,
    }).onConflictDoNothing();
    // The row lock serialises concurrent publishes of one adapter, so version numbers never collide.
    const [adapter] = await tx.select().from(adapters).where(and(eq(adapters.namespaceId, input.namespaceId), eq(adapters.name, input.name))).for('update');
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
      warnings,
      lineage: input.lineage ?? null,
      sourceJobId: input.sourceJobId ?? null,
      publishedBy: input.publishedBy ?? null,
    }).returning({ id: adapterVersions.id, version: adapterVersions.version });

    await tx.insert(adapterFiles).values(input.files.map((file) => ({ versionId: version!.id, path: file.path, sha256: file.sha256, size: file.size })));
    const updates: Partial<typeof adapters.$inferInsert> = { updatedAt: new Date() };
    if (input.description) updates.description = input.description;
    if (input.domain) updates.domain = input.domain;
    await tx.update(adapters).set(updates).where(eq(adapters.id, adapter!.id));
    return { versionId: version!.id, version: version!.version, warnings };
  });
}

export const adapterSorts = ['recent', 'downloads', 'likes'] as const;

function sortOrder(sort: (typeof adapterSorts)[number] | undefined): SQL[] {
  if (sort === 'downloads') return [desc(adapters.downloads)];
  if (sort === 'likes') return [desc(adapters.likes)];
  return [];
}

export async function searchAdapters(db: Db, input: { query?: string; baseModelId?: string; domain?: string; sort?: (typeof adapterSorts)[number]; limit: number }) {
  // An adapter whose every version is yanked has nothing to offer in a listing.
  const filters: SQL[] = [sql`exists (select 1 from ${adapterVersions} where ${adapterVersions.adapterId} = ${adapters.id} and ${adapterVersions.yankedAt} is null)`];
  if (input.baseModelId) filters.push(eq(adapters.baseModelId, input.baseModelId));
  if (input.domain) filters.push(eq(adapters.domain, input.domain));
  if (input.query?.trim()) {
    const q = input.query.trim();
    filters.push(or(
      sql`to_tsvector('english', ${adapters.name} || ' ' || ${adapters.description}) @@ plainto_tsquery('english', ${q})`,
      ilike(adapters.name, `%${q.replace(/[%_\\]/g, (c) => '\\' + c)}%`),
      ilike(namespaces.name, `%${q.replace(/[%_\\]/g, (c) => '\\' + c)}%`),
    )!);
  }

  return db.select({
    namespace: namespaces.name,
    name: adapters.name,
    description: adapters.description,
    domain: adapters.domain,
    baseModelId: adapters.baseModelId,
    downloads: adapters.downloads,
    likes: adapters.likes,
    updatedAt: adapters.updatedAt,
    latestVersion: sql<number | null>`(select max(${adapterVersions.version}) from ${adapterVersions} where ${adapterVersions.adapterId} = ${adapters.id} and ${adapterVersions.yankedAt} is null)`,
    deprecated: sql<boolean>`${adapters.deprecatedAt} is not null`,
    bestAccuracy: sql<number | null>`(select max(${evalResults.accuracy}) from ${evalResults} join ${adapterVersions} v on v.id = ${evalResults.adapterVersionId} where v.adapter_id = ${adapters.id})`,
  })
    .from(adapters)
    .innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .where(filters.length ? and(...filters) : undefined)
    .orderBy(...sortOrder(input.sort), desc(adapters.updatedAt))
    .limit(input.limit);
}

export async function findAdapter(db: Db, namespace: string, name: string) {
  const [row] = await db.select({ adapter: adapters, namespace: namespaces.name, baseModelName: baseModels.displayName })
    .from(adapters)
    .innerJoin(namespaces, eq(namespaces.id, adapters.namespaceId))
    .innerJoin(baseModels, eq(baseModels.id, adapters.baseModelId))
    .where(and(eq(namespaces.name, namespace), eq(adapters.name, name)))
    .limit(1);
  if (!row) throw notFound(`adapter ${namespace}/${name}`);
  return row;
}

export async function getAdapterPage(db: Db, namespace: string, name: string, versionNumber?: number) {
  const { adapter, baseModelName } = await findAdapter(db, namespace, name);
  const versions = await db.select({
    id: adapterVersions.id, version: adapterVersions.version, createdAt: adapterVersions.createdAt, downloads: adapterVersions.downloads,
    sourceJobId: adapterVersions.sourceJobId, yanked: sql<boolean>`${adapterVersions.yankedAt} is not null`,
  }).from(adapterVersions).where(eq(adapterVersions.adapterId, adapter.id)).orderBy(desc(adapterVersions.version));
  if (versions.length === 0) throw notFound(`adapter ${namespace}/${name} has no versions yet; it`);

  // "Latest" skips yanked versions; an exact number still reaches them.
  const chosen = versionNumber === undefined ? versions.find((v) => !v.yanked) : versions.find((v) => v.version === versionNumber);
  if (!chosen) throw notFound(versionNumber === undefined ? `a version of ${namespace}/${name} that is not yanked` : `version ${versionNumber} of ${namespace}/${name}`);

  const [detail] = await db.select().from(adapterVersions).where(eq(adapterVersions.id, chosen.id));
  const files = await db.select({ path: adapterFiles.path, size: adapterFiles.size, sha256: adapterFiles.sha256 })
    .from(adapterFiles).where(eq(adapterFiles.versionId, chosen.id)).orderBy(adapterFiles.path);
  const scores = await db.select().from(evalResults).where(eq(evalResults.adapterVersionId, chosen.id)).orderBy(desc(evalResults.createdAt));

  return {
    adapterId: adapter.id,
    namespace,
    name: adapter.name,
    description: adapter.description,
    domain: adapter.domain,
    baseModelId: adapter.baseModelId,
    baseModelName,
    downloads: adapter.downloads,
    likes: adapter.likes,
    deprecation: adapter.deprecatedAt ? { message: adapter.deprecationMessage ?? '', replacedBy: adapter.replacedBy } : null,
    versions,
    version: {
      id: detail!.id, version: detail!.version, createdAt: detail!.createdAt, configSummary: detail!.configSummary,
      modelCard: detail!.modelCard, warnings: detail!.warnings, lineage: detail!.lineage, sourceJobId: detail!.sourceJobId,
      yanked: detail!.yankedAt ? { at: detail!.yankedAt, reason: detail!.yankReason ?? '' } : null,
    },
    files,
    scores: scores.map((s) => ({ taskId: s.taskId, accuracy: s.accuracy, stderr: s.stderr, correct: s.correct, total: s.total, createdAt: s.createdAt })),
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
export async function downloadFile(db: Db, input: { namespace: string; name: string; version?: number; path: string; clientKey?: string }) {
  const page = await getAdapterPage(db, input.namespace, input.name, input.version);
  const file = page.files.find((f) => f.path === input.path);
  if (!file) throw notFound(`file ${input.path} in ${input.namespace}/${input.name} version ${page.version.version}`);
  await countDownload(db, { adapterId: page.adapterId, versionId: page.version.id, clientKey: input.clientKey });

  const warning = page.version.yanked ? `version ${page.version.version} of ${input.namespace}/${input.name} was yanked: ${page.version.yanked.reason}` : null;
  return { url: await presignGet(await blobObjectKey(db, file.sha256), file.path), sha256: file.sha256, size: file.size, version: page.version.version, warning };
}

/** Loads an adapter of the caller's own namespace; another namespace's adapter is NOT_FOUND to it. */
async function ownAdapter(db: Db, namespaceId: string, namespace: string, name: string) {
  const found = await findAdapter(db, namespace, name);
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
  return { version: yanked.version };
}

/** Marks an adapter deprecated, optionally naming its replacement as `namespace/name`. */
export async function deprecateAdapter(db: Db, input: { namespaceId: string; namespace: string; name: string; message: string; replacedBy: string | null }) {
  const adapter = await ownAdapter(db, input.namespaceId, input.namespace, input.name);
  if (input.replacedBy) {
    const [replacementNamespace, replacementName] = input.replacedBy.split('/');
    if (!replacementNamespace || !replacementName) throw badRequest(`replacement ${JSON.stringify(input.replacedBy)} must be written namespace/name`);
    await findAdapter(db, replacementNamespace, replacementName);
  }
  await db.update(adapters).set({ deprecatedAt: sql`now()`, deprecationMessage: input.message, replacedBy: input.replacedBy }).where(eq(adapters.id, adapter.id));
  return { deprecated: true };
}

/** Likes or unlikes an adapter for a user; returns the new like count. Repeating a like changes nothing. */
export async function setLike(db: Db, input: { userId: string; namespace: string; name: string; liked: boolean }) {
  const { adapter } = await findAdapter(db, input.namespace, input.name);
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
