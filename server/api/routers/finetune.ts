import { z } from 'zod';
import { hyperparameters } from '../../contracts/runner';
import { notFound } from '../../services/errors';
import { cancelJob, createFinetuneJob, getJob, listJobs, presets } from '../../services/jobs';
import { publicProcedure, router, userProcedure } from '../trpc';

export const finetuneRouter = router({
  presets: publicProcedure.query(() => presets),

  create: userProcedure('fine-tune')
    .input(z.object({
      datasetVersionId: z.number().int().positive(),
      baseModelId: z.string().min(1).max(200),
      adapterName: z.string().min(1).max(96),
      domain: z.string().max(50).nullable().default(null),
      description: z.string().max(2000).default(''),
      hyperparameters,
      evalLimit: z.number().int().positive().nullable().default(null),
    }))
    .mutation(({ ctx, input }) => createFinetuneJob(ctx.db, {
      userId: ctx.user.id, namespaceId: ctx.user.namespaceId, datasetVersionId: input.datasetVersionId, baseModelId: input.baseModelId,
      params: { adapterName: input.adapterName, domain: input.domain, description: input.description, hyperparameters: input.hyperparameters, evalLimit: input.evalLimit },
    })),

  get: userProcedure('read')
    .input(z.object({ jobId: z.string().uuid() }))
    .query(async ({ ctx, input }) => {
      const job = await getJob(ctx.db, input.jobId);
      // Jobs are private to their namespace; others learn nothing, not even that the job exists.
      if (job.namespaceId !== ctx.user.namespaceId) throw notFound(`job ${input.jobId}`);
      return job;
    }),

  list: userProcedure('read').query(({ ctx }) => listJobs(ctx.db, ctx.user.namespaceId)),

  cancel: userProcedure('fine-tune')
    .input(z.object({ jobId: z.string().uuid() }))
    .mutation(({ ctx, input }) => cancelJob(ctx.db, input.jobId, ctx.user.namespaceId)),
});
