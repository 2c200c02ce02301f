import { z } from 'zod';
import { closeUpload, finishUpload, beginUpload, rejectPickles, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import {
  deleteAdapter, deprecateAdapter, downloadFile, getAdapterPage, purgeDeletedAdapters, publishAdapterVersion, renameAdapter, restoreAdapter, setLike, yankVersion,
} from '../../services/adapters';
import { namespaceForPublishing } from '../../services/accounts';
import { searchAdapters, searchFacets, searchFilters, searchInput } from '../../services/search';
import { publicProcedure, router, userProcedure } from '../trpc';

const adapterRef = z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100) });

export const adaptersRouter = router({
  /** One page of listed adapters; pass `nextCursor` back as `cursor` for the next one. */
  search: publicProcedure
    .input(searchInput)
    .query(({ ctx, input }) => searchAdapters(ctx.db, input)),

  /** Counts per base model, domain, task, rank, license and PEFT type under the same filters. */
  facets: publicProcedure
    .input(searchFilters)
    .query(({ ctx, input }) => searchFacets(ctx.db, input)),

  get: publicProcedure
    .input(adapterRef.extend({ version: z.number().int().positive().optional() }))
    .query(({ ctx, input }) => getAdapterPage(ctx.db, input.namespace, input.name, input.version)),

  downloadUrl: publicProcedure
    .input(adapterRef.extend({ version: z.number().int().positive().optional(), path: z.string().min(1).max(200) }))
    .mutation(({ ctx, input }) => downloadFile(ctx.db, { ...input, clientKey: ctx.clientKey })),

  /** Step 1 of publishing: announce the files, get a presigned PUT for each. */
  beginUpload: userProcedure('write')
    .input(z.object({ files: z.array(uploadFile).min(1).max(32) }))
    .mutation(async ({ ctx, input }) => {
      rejectPickles(input.files);
      await purgeDeletedAdapters(ctx.db);
      return beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'adapter', files: input.files });
    }),

  /**
   * Step 2: verify every uploaded file and the adapter itself, then publish the next version.
   * Returns `{ status: 'verifying', … }` while the files' sha256 check is unfinished; call again.
   */
  publish: userProcedure('write')
    .input(z.object({
      uploadId: z.string().uuid(),
      name: z.string().min(1).max(96),
      baseModelId: z.string().min(1).max(200),
      description: z.string().max(2000).optional(),
      domain: z.string().max(50).nullable().optional(),
      label: z.string().max(64).nullable().optional(),
      changelog: z.string().max(20_000).nullable().optional(),
    }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'adapter');
      if (isVerifying(files)) return files;
      const published = await publishAdapterVersion(ctx.db, {
        namespaceId: ctx.user.namespaceId, name: input.name, baseModelId: input.baseModelId, files,
        description: input.description, domain: input.domain, publishedBy: ctx.user.id, label: input.label, changelog: input.changelog,
      });
      await closeUpload(ctx.db, input.uploadId);
      return { ...published, namespace: ctx.user.namespace, name: input.name };
    }),

  yank: userProcedure('write')
    .input(adapterRef.extend({ version: z.number().int().positive(), reason: z.string().min(1, 'give a reason users will read').max(1000) }))
    .mutation(({ ctx, input }) => yankVersion(ctx.db, { ...input, namespaceId: ctx.user.namespaceId })),

  deprecate: userProcedure('write')
    .input(adapterRef.extend({ message: z.string().min(1).max(1000), replacedBy: z.string().max(200).nullable().default(null) }))
    .mutation(({ ctx, input }) => deprecateAdapter(ctx.db, { ...input, namespaceId: ctx.user.namespaceId })),

  /** Soft delete by the owner; restorable until the retention period ends. */
  delete: userProcedure('write')
    .input(adapterRef)
    .mutation(({ ctx, input }) => deleteAdapter(ctx.db, { ...input, namespaceId: ctx.user.namespaceId })),

  restore: userProcedure('write')
    .input(adapterRef)
    .mutation(({ ctx, input }) => restoreAdapter(ctx.db, { ...input, namespaceId: ctx.user.namespaceId })),

  /** Renames an adapter, or transfers it with `newNamespace`; the old name keeps redirecting. */
  rename: userProcedure('write')
    .input(adapterRef.extend({ newName: z.string().min(1).max(96), newNamespace: z.string().min(1).max(100).optional() }))
    .mutation(async ({ ctx, input }) => {
      const newNamespaceId = input.newNamespace ? await namespaceForPublishing(ctx.db, ctx.user, input.newNamespace) : ctx.user.namespaceId;
      return renameAdapter(ctx.db, { ...input, namespaceId: ctx.user.namespaceId, newNamespaceId });
    }),

  like: userProcedure('write')
    .input(adapterRef.extend({ liked: z.boolean() }))
    .mutation(({ ctx, input }) => setLike(ctx.db, { ...input, userId: ctx.user.id })),
});
