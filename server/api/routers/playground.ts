import { z } from 'zod';
import { listSaved, saveGeneration } from '../../playground/service';
import { router, userProcedure } from '../trpc';

const versionRef = z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100), version: z.number().int().positive() });

export const playgroundRouter = router({
  // Stores a generation only when the user clicks "Save"; the streaming route keeps nothing.
  save: userProcedure('write')
    .input(versionRef.extend({
      prompt: z.string().min(1).max(8000),
      temperature: z.number().min(0).max(2),
      maxTokens: z.number().int().min(1).max(4096),
      seed: z.number().int().min(0).max(2 ** 32 - 1),
      baseOutput: z.string().max(100_000),
      adapterOutput: z.string().max(100_000),
    }))
    .mutation(({ ctx, input }) => saveGeneration(ctx.db, ctx, { ...input, userId: ctx.user.id })),

  saved: userProcedure('read')
    .input(versionRef.partial({ version: true }))
    .query(({ ctx, input }) => listSaved(ctx.db, ctx, { ...input, userId: ctx.user.id })),
});
