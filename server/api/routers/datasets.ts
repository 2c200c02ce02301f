import { z } from 'zod';
import { createDatasetVersion, getDatasetVersion, listDatasets } from '../../services/datasets';
import { beginUpload, closeUpload, finishUpload, uploadFile } from '../../services/uploads';
import { namespaceProcedure, router, userProcedure } from '../trpc';

// Data sets are private to their namespace: members add them, viewers read them.
const namespaceInput = z.object({ namespace: z.string().min(1).max(100).optional() });

export const datasetsRouter = router({
  beginUpload: userProcedure('fine-tune')
    .input(z.object({ file: uploadFile }))
    .mutation(({ ctx, input }) => beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'dataset', files: [input.file] })),

  /** Verifies the upload and validates it against the base model's tokenizer; returns the report. */
  create: namespaceProcedure('fine-tune', 'member', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.extend({ uploadId: z.string().uuid(), name: z.string().min(1).max(96), baseModelId: z.string().min(1).max(200) }))
    .mutation(async ({ ctx, input }) => {
      const [file] = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'dataset');
      const created = await createDatasetVersion(ctx.db, { namespaceId: ctx.access.namespaceId, name: input.name, file: file!, baseModelId: input.baseModelId });
      await closeUpload(ctx.db, input.uploadId);
      return created;
    }),

  get: namespaceProcedure('read', 'viewer', { from: 'datasetVersion', field: 'id' })
    .input(z.object({ id: z.number().int().positive() }))
    .query(async ({ ctx, input }) => {
      const found = await getDatasetVersion(ctx.db, input.id);
      return { id: found.version.id, name: found.name, version: found.version.version, valid: found.version.valid, report: found.version.report, sha256: found.version.sha256, size: found.version.size };
    }),

  list: namespaceProcedure('read', 'viewer', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.optional())
    .query(({ ctx }) => listDatasets(ctx.db, ctx.access.namespaceId)),
});
