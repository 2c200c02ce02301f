import { z } from 'zod';
import { baseModelManifest, listBaseModels, registerBaseModel } from '../../services/base-models';
import { queuePlaygroundGraph } from '../../services/edge';
import { beginUpload, closeUpload, finishUpload, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import { adminProcedure, publicProcedure, router } from '../trpc';

export const baseModelsRouter = router({
  list: publicProcedure.query(({ ctx }) => listBaseModels(ctx.db)),

  beginUpload: adminProcedure
    .input(z.object({ files: z.array(uploadFile).min(1).max(64) }))
    .mutation(({ ctx, input }) => beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'base-model', files: input.files })),

  register: adminProcedure
    .input(z.object({
      uploadId: z.string().uuid(), id: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,99}$/), displayName: z.string().min(1).max(200), manifest: baseModelManifest,
      // Queue the playground graph export when the upload has no onnx/ files and the model is
      // within PLAYGROUND_MAX_PARAMETERS.
      exportPlaygroundGraph: z.boolean().default(true),
    }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'base-model');
      if (isVerifying(files)) return files;
      const registered = await registerBaseModel(ctx.db, { id: input.id, displayName: input.displayName, manifest: input.manifest, files });
      await closeUpload(ctx.db, input.uploadId);
      const graphJobId = input.exportPlaygroundGraph
        ? await queuePlaygroundGraph(ctx.db, { baseModelId: input.id, namespaceId: ctx.user.namespaceId, createdBy: ctx.user.id })
        : null;
      return { ...registered, graphJobId };
    }),
});
