import { z } from 'zod';
import { closeUpload, finishUpload, beginUpload, rejectPickles, uploadFile } from '../../services/uploads';
import { adapterSorts, deprecateAdapter, downloadFile, getAdapterPage, publishAdapterVersion, searchAdapters, setLike, yankVersion } from '../../services/adapters';
import { publicProcedure, router, userProcedure } from '../trpc';

const adapterRef = z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100) });

export const adaptersRouter = router({
  search: publicProcedure
    .input(z.object({ query: z.string().max(200).optional(), baseModelId: z.string().max(200).optional(), domain: z.string().max(50).optional(), sort: z.enum(adapterSorts).default('recent'), limit: z.number().int().min(1).max(100).default(50) }))
    .query(({ ctx, input }) => searchAdapters(ctx.db, input)),

  get: publicProcedure
    .input(adapterRef.extend({ version: z.number().int().positive().optional() }))
    .query(({ ctx, input }) => getAdapterPage(ctx.db, input.namespace, input.name, input.version)),

  downloadUrl: publicProcedure
    .input(adapterRef.extend({ version: z.number().int().positive().optional(), path: z.string().min(1).max(200) }))
    .mutation(({ ctx, input }) => downloadFile(ctx.db, { ...input, clientKey: ctx.clientKey })),

  /** Step 1 of publishing: announce the files, get a presigned PUT for each. */
  beginUpload: userProcedure('write')
    .input(z.object({ files: z.array(uploadFile).min(1).max(32) }))
    .mutation(({ ctx, input }) => {
      rejectPickles(input.files);
      return beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'adapter', files: input.files });
    }),

  /** Step 2: verify every uploaded file and the adapter itself, then publish the next version. */
  publish: userProcedure('write')
    .input(z.object({
      uploadId: z.string().uuid(),
      name: z.string().min(1).max(96),
      baseModelId: z.string().min(1).max(200),
      description: z.string().max(2000).optional(),
      domain: z.string().max(50).nullable().optional(),
    }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'adapter');
      const published = await publishAdapterVersion(ctx.db, {
        namespaceId: ctx.user.namespaceId, name: input.name, baseModelId: input.baseModelId, files,
        description: input.description, domain: input.domain, publishedBy: ctx.user.id,
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

  like: userProcedure('write')
    .input(adapterRef.extend({ liked: z.boolean() }))
    .mutation(({ ctx, input }) => setLike(ctx.db, { ...input, userId: ctx.user.id })),
});
