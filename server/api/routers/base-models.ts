import { z } from 'zod';
import { baseModelManifest, listBaseModels, registerBaseModel } from '../../services/base-models';
import { beginUpload, closeUpload, finishUpload, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import { adminProcedure, publicProcedure, router } from '../trpc';

export const baseModelsRouter = router({
  list: publicProcedure.query(({ ctx }) => listBaseModels(ctx.db)),

  beginUpload: adminProcedure
    .input(z.object({ files: z.array(uploadFile).min(1).max(64) }))
    .mutation(({ ctx, input }) => beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'base-model', files: input.files })),

  register: adminProcedure
    .input(z.object({ uploadId: z.string().uuid(), id: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,99}$/), displayName: z.string().min(1).max(200), manifest: baseModelManifest }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'base-model');
      if (isVerifying(files)) return files;
      const registered = await registerBaseModel(ctx.db, { id: input.id, displayName: input.displayName, manifest: input.manifest, files });
      await closeUpload(ctx.db, input.uploadId);
      return registered;
    }),
});
