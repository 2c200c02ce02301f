import { z } from 'zod';
import { evaluateNewVersion } from '../../services/evaluations';
import { closeUpload, finishUpload, beginUpload, rejectPickles, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import {
  deleteAdapter, deprecateAdapter, downloadFile, getAdapterPage, purgeDeletedAdapters, publishAdapterVersion, renameAdapter, restoreAdapter, setLike, setVisibility, yankVersion,
} from '../../services/adapters';
import { namespaceForPublishing } from '../../services/accounts';
import { searchAdapters, searchFacets, searchFilters, searchInput } from '../../services/search';
import { recordAudit } from '../../services/audit';
import { adapterVisibilities } from '@/drizzle/schema';
import { namespaceProcedure, publicProcedure, router, userProcedure } from '../trpc';
import { roleAtLeast, roleIn } from '../authz';

// Managing an adapter needs the admin role in its namespace (its owner, for a personal one).
const manageAdapter = namespaceProcedure('write', 'admin', { from: 'adapter', redirects: true });

const adapterRef = z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100) });

export const adaptersRouter = router({
  /** One page of listed adapters; pass `nextCursor` back as `cursor` for the next one. */
  search: publicProcedure.meta({ expensive: true })
    .input(searchInput)
    .query(({ ctx, input }) => searchAdapters(ctx.db, ctx, input)),

  /** Counts per base model, domain, task, rank, license and PEFT type under the same filters. */
  facets: publicProcedure.meta({ expensive: true })
    .input(searchFilters)
    .query(({ ctx, input }) => searchFacets(ctx.db, ctx, input)),

  get: publicProcedure
    .input(adapterRef.extend({ version: z.number().int().positive().optional() }))
    .query(async ({ ctx, input }) => {
      const page = await getAdapterPage(ctx.db, ctx, input.namespace, input.name, input.version);
      // Tells pages whether to offer management controls; the management procedures check again.
      const role = ctx.user ? await roleIn(ctx, page.namespaceId) : null;
      return { ...page, canManage: roleAtLeast(role, 'admin') };
    }),

  downloadUrl: publicProcedure
    .input(adapterRef.extend({ version: z.number().int().positive().optional(), path: z.string().min(1).max(200) }))
    .mutation(({ ctx, input }) => downloadFile(ctx.db, ctx, { ...input, clientKey: ctx.clientKey })),

  /** Step 1 of publishing: announce the files, get a presigned PUT for each. */
  beginUpload: userProcedure('write')
    .input(z.object({ files: z.array(uploadFile).min(1, 'no files announced; an adapter needs adapter_config.json and adapter_model.safetensors').max(32) }))
    .mutation(async ({ ctx, input }) => {
      rejectPickles(input.files);
      await purgeDeletedAdapters(ctx.db);
      return beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'adapter', files: input.files });
    }),

  /**
   * Step 2: verify every uploaded file and the adapter itself, then publish the next version
   * into `namespace` (the caller's own when absent), which needs the admin role there.
   * Returns `{ status: 'verifying', … }` while the files' sha256 check is unfinished; call again.
   */
  publish: namespaceProcedure('write', 'admin', { from: 'adapter', redirects: false })
    .input(z.object({
      uploadId: z.string().uuid(),
      namespace: z.string().min(1).max(100).optional(),
      name: z.string().min(1).max(96),
      baseModelId: z.string().min(1).max(200),
      description: z.string().max(2000).optional(),
      domain: z.string().max(50).nullable().optional(),
      label: z.string().max(64).nullable().optional(),
      changelog: z.string().max(20_000).nullable().optional(),
      // Visibility of a new adapter (public by default); given for an existing one, it changes it.
      visibility: z.enum(adapterVisibilities).optional(),
    }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'adapter');
      if (isVerifying(files)) return files;
      const published = await publishAdapterVersion(ctx.db, {
        namespaceId: ctx.access.namespaceId, name: input.name, baseModelId: input.baseModelId, files,
        description: input.description, domain: input.domain, publishedBy: ctx.user.id, label: input.label, changelog: input.changelog, visibility: input.visibility,
      });
      await closeUpload(ctx.db, input.uploadId);
      // Uploads run the suites of their domain only, never the per-task fallback of fine-tunes.
      await evaluateNewVersion(ctx.db, { versionId: published.versionId, parentJobId: null, limit: null, createdBy: ctx.user.id, tasksWithoutSuite: false });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.publish', target: `${ctx.access.namespace}/${input.name}`, details: { version: published.version, visibility: input.visibility ?? null } });
      return { ...published, namespace: ctx.access.namespace, name: input.name };
    }),

  yank: manageAdapter
    .input(adapterRef.extend({ version: z.number().int().positive(), reason: z.string().min(1, 'give a reason users will read').max(1000) }))
    .mutation(async ({ ctx, input }) => {
      const yanked = await yankVersion(ctx.db, { ...input, namespaceId: ctx.access.namespaceId });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.yank', target: `${input.namespace}/${input.name}`, details: { version: input.version, reason: input.reason } });
      return yanked;
    }),

  deprecate: manageAdapter
    .input(adapterRef.extend({ message: z.string().min(1).max(1000), replacedBy: z.string().max(200).nullable().default(null) }))
    .mutation(async ({ ctx, input }) => {
      const deprecated = await deprecateAdapter(ctx.db, ctx, { ...input, namespaceId: ctx.access.namespaceId });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.deprecate', target: `${input.namespace}/${input.name}`, details: { replacedBy: input.replacedBy } });
      return deprecated;
    }),

  /** Soft delete by a namespace admin; restorable until the retention period ends. */
  delete: manageAdapter
    .input(adapterRef)
    .mutation(async ({ ctx, input }) => {
      const deleted = await deleteAdapter(ctx.db, { ...input, namespaceId: ctx.access.namespaceId });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.delete', target: `${input.namespace}/${input.name}` });
      return deleted;
    }),

  restore: manageAdapter
    .input(adapterRef)
    .mutation(async ({ ctx, input }) => {
      const restored = await restoreAdapter(ctx.db, { ...input, namespaceId: ctx.access.namespaceId });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.restore', target: `${input.namespace}/${input.name}` });
      return restored;
    }),

  /**
   * Renames an adapter, or transfers it with `newNamespace` (admin role needed there too);
   * the old name keeps redirecting.
   */
  rename: manageAdapter
    .input(adapterRef.extend({ newName: z.string().min(1).max(96), newNamespace: z.string().min(1).max(100).optional() }))
    .mutation(async ({ ctx, input }) => {
      const newNamespaceId = input.newNamespace ? await namespaceForPublishing(ctx, input.newNamespace) : ctx.access.namespaceId;
      const renamed = await renameAdapter(ctx.db, { ...input, namespaceId: ctx.access.namespaceId, newNamespaceId });
      const to = `${input.newNamespace ?? ctx.access.namespace}/${input.newName}`;
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.rename', target: `${input.namespace}/${input.name}`, details: { to } });
      if (newNamespaceId !== ctx.access.namespaceId) {
        await recordAudit(ctx.db, { namespaceId: newNamespaceId, actorUserId: ctx.user.id, action: 'adapter.rename', target: to, details: { from: `${input.namespace}/${input.name}` } });
      }
      return renamed;
    }),

  like: userProcedure('write')
    .input(adapterRef.extend({ liked: z.boolean() }))
    .mutation(({ ctx, input }) => setLike(ctx.db, ctx, { ...input, userId: ctx.user.id })),

  /**
   * Makes an adapter public or private. A private adapter, its versions, files and scores are
   * NOT_FOUND to everyone without a role in its namespace.
   */
  setVisibility: manageAdapter
    .input(adapterRef.extend({ visibility: z.enum(adapterVisibilities) }))
    .mutation(async ({ ctx, input }) => {
      const changed = await setVisibility(ctx.db, { ...input, namespaceId: ctx.access.namespaceId });
      await recordAudit(ctx.db, { namespaceId: ctx.access.namespaceId, actorUserId: ctx.user.id, action: 'adapter.visibility', target: `${ctx.access.namespace}/${changed.name}`, details: { from: changed.previous, to: changed.visibility } });
      return changed;
    }),
});
