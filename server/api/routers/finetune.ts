import { z } from 'zod';
import { hyperparameters } from '../../contracts/runner';
import { cancelJob, createFinetuneJob, getJob, jobLogText, listJobs, presets, resumeJob } from '../../services/jobs';
import { adapterVisibilities } from '@/drizzle/schema';
import { namespaceProcedure, publicProcedure, router } from '../trpc';

// Jobs are private to their namespace: members start and cancel them, viewers read them.
const namespaceInput = z.object({ namespace: z.string().min(1).max(100).optional() });

export const finetuneRouter = router({
  presets: publicProcedure.query(() => presets),

  create: namespaceProcedure('fine-tune', 'member', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.extend({
      datasetVersionId: z.number().int().positive(),
      baseModelId: z.string().min(1).max(200),
      adapterName: z.string().min(1).max(96),
      domain: z.string().max(50).nullable().default(null),
      description: z.string().max(2000).default(''),
      hyperparameters,
      evalLimit: z.number().int().positive().nullable().default(null),
      // Visibility of the adapter the job publishes (public for a new one when absent).
      visibility: z.enum(adapterVisibilities).optional(),
    }))
    .mutation(({ ctx, input }) => createFinetuneJob(ctx.db, {
      userId: ctx.user.id, namespaceId: ctx.access.namespaceId, datasetVersionId: input.datasetVersionId, baseModelId: input.baseModelId,
      params: { adapterName: input.adapterName, domain: input.domain, description: input.description, hyperparameters: input.hyperparameters, evalLimit: input.evalLimit, visibility: input.visibility },
    })),

  // Outsiders learn nothing about a job, not even that it exists: the rule answers NOT_FOUND.
  get: namespaceProcedure('read', 'viewer', { from: 'job', field: 'jobId' })
    .input(z.object({ jobId: z.string().uuid() }))
    .query(({ ctx, input }) => getJob(ctx.db, input.jobId)),

  list: namespaceProcedure('read', 'viewer', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.optional())
    .query(({ ctx }) => listJobs(ctx.db, ctx.access.namespaceId)),

  cancel: namespaceProcedure('fine-tune', 'member', { from: 'job', field: 'jobId' })
    .input(z.object({ jobId: z.string().uuid() }))
    .mutation(({ ctx, input }) => cancelJob(ctx.db, input.jobId, ctx.access.namespaceId)),

  // Continues a cancelled or failed fine-tune from its last checkpoint as a new attempt.
  resume: namespaceProcedure('fine-tune', 'member', { from: 'job', field: 'jobId' })
    .input(z.object({ jobId: z.string().uuid() }))
    .mutation(({ ctx, input }) => resumeJob(ctx.db, input.jobId, ctx.access.namespaceId)),

  // Every event of the job as text; the log download route serves it as a file.
  logs: namespaceProcedure('read', 'viewer', { from: 'job', field: 'jobId' })
    .input(z.object({ jobId: z.string().uuid() }))
    .query(({ ctx, input }) => jobLogText(ctx.db, input.jobId)),
});
