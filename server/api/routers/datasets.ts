import { z } from 'zod';
import { checkDatasetFile, createDatasetVersion, getDatasetVersion, listDatasets } from '../../services/datasets';
import { notFound } from '../../services/errors';
import { beginUpload, closeUpload, finishUpload, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import { router, userProcedure } from '../trpc';

export const datasetsRouter = router({
  beginUpload: userProcedure('fine-tune')
    .input(z.object({ file: uploadFile }))
    .mutation(({ ctx, input }) => {
      checkDatasetFile(input.file);
      return beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'dataset', files: [input.file] });
    }),

  /**
   * Verifies the upload and validates it against the base model's tokenizer; returns the report,
   * or `{ status: 'verifying', … }` while the file's sha256 check is unfinished (call again).
   */
  create: userProcedure('fine-tune')
    .input(z.object({ uploadId: z.string().uuid(), name: z.string().min(1).max(96), baseModelId: z.string().min(1).max(200) }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'dataset');
      if (isVerifying(files)) return files;
      const [file] = files;
      const created = await createDatasetVersion(ctx.db, { namespaceId: ctx.user.namespaceId, name: input.name, file: file!, baseModelId: input.baseModelId });
      await closeUpload(ctx.db, input.uploadId);
      return created;
    }),

  get: userProcedure('read')
    .input(z.object({ id: z.number().int().positive() }))
    .query(async ({ ctx, input }) => {
      const found = await getDatasetVersion(ctx.db, input.id);
      if (found.namespaceId !== ctx.user.namespaceId) throw notFound(`data set version ${input.id}`);
      return { id: found.version.id, name: found.name, version: found.version.version, valid: found.version.valid, report: found.version.report, sha256: found.version.sha256, size: found.version.size };
    }),

  list: userProcedure('read').query(({ ctx }) => listDatasets(ctx.db, ctx.user.namespaceId)),
});
