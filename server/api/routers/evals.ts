import { z } from 'zod';
import { getAdapterPage } from '../../services/adapters';
import { adapters } from '@/drizzle/schema';
import { eq } from 'drizzle-orm';
import { createEvaluationJob, createSuiteEvaluation, getSuite, leaderboard, listSuites, listTasks, registerSuite, registerTask } from '../../services/evaluations';
import { compareVersions, evaluationRun, leaderboardSorts, suiteLeaderboard, versionSuiteScore } from '../../services/leaderboards';
import { beginUpload, closeUpload, finishUpload, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import { adminProcedure, publicProcedure, router, userProcedure, type Context } from '../trpc';

/**
 * Returns the namespace an evaluation job belongs to: the requester's for a public adapter, so
 * the requester can follow it. For a private adapter it is the adapter's own namespace, so the
 * job and its scores stay visible only to that namespace.
 */
async function evaluationNamespace(ctx: Context & { user: NonNullable<Context['user']> }, page: { adapterId: string; visibility: string }): Promise<string> {
  if (page.visibility !== 'private') return ctx.user.namespaceId;
  const [adapter] = await ctx.db.select({ namespaceId: adapters.namespaceId }).from(adapters).where(eq(adapters.id, page.adapterId));
  return adapter!.namespaceId;
}

export const evalsRouter = router({
  tasks: publicProcedure.query(({ ctx }) => listTasks(ctx.db)),

  leaderboard: publicProcedure.meta({ expensive: true })
    .input(z.object({ taskId: z.string().min(1).max(100), baseModelId: z.string().max(200).optional() }))
    .query(({ ctx, input }) => leaderboard(ctx.db, ctx, input.taskId, input.baseModelId)),

  /**
   * Queues an evaluation of an adapter version on one task. A private version is NOT_FOUND to
   * callers outside its namespace, and its job belongs to that namespace.
   */
  request: userProcedure('evaluate')
    .input(z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100), version: z.number().int().positive().optional(), taskId: z.string().min(1).max(100), limit: z.number().int().positive().nullable().default(null) }))
    .mutation(async ({ ctx, input }) => {
      const page = await getAdapterPage(ctx.db, ctx, input.namespace, input.name, input.version);
      return createEvaluationJob(ctx.db, { versionId: page.version.id, taskId: input.taskId, limit: input.limit, createdBy: ctx.user.id, namespaceId: await evaluationNamespace(ctx, page) });
    }),

  /** Ranks adapter versions on one suite version and base model; sorting and filters come from the page's URL. */
  suiteLeaderboard: publicProcedure.meta({ expensive: true })
    .input(z.object({
      suiteId: z.string().min(1).max(100), suiteVersion: z.number().int().positive().optional(), baseModelId: z.string().min(1).max(200).optional(),
      sort: z.enum(leaderboardSorts).optional(), order: z.enum(['asc', 'desc']).optional(), query: z.string().max(200).optional(),
      loraRank: z.number().int().positive().max(65536).optional(), hideContaminated: z.boolean().optional(),
    }))
    .query(({ ctx, input }) => suiteLeaderboard(ctx.db, ctx, input)),

  /** Per-task scores of 2 to 4 adapter versions of one base model, with differences from the first. */
  compare: publicProcedure.meta({ expensive: true })
    .input(z.object({
      versions: z.array(z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100), version: z.number().int().positive() }))
        .min(2, 'choose at least 2 versions to compare').max(4, 'compare at most 4 versions at once'),
    }))
    .query(({ ctx, input }) => compareVersions(ctx.db, ctx, input.versions)),

  /** One evaluation result with its settings, baselines, job and contamination check. */
  run: publicProcedure
    .input(z.object({ id: z.number().int().positive() }))
    .query(({ ctx, input }) => evaluationRun(ctx.db, ctx, input.id)),

  /** A version's comparable score on the latest version of a suite; the badge route draws it. */
  versionScore: publicProcedure.meta({ expensive: true })
    .input(z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100), version: z.union([z.number().int().positive(), z.literal('latest')]), suiteId: z.string().min(1).max(100) }))
    .query(({ ctx, input }) => versionSuiteScore(ctx.db, ctx, input)),

  suites: publicProcedure.query(({ ctx }) => listSuites(ctx.db)),

  suite: publicProcedure
    .input(z.object({ id: z.string().min(1).max(100), version: z.number().int().positive().optional() }))
    .query(({ ctx, input }) => getSuite(ctx.db, input.id, input.version)),

  /** Queues one evaluation job per task of a suite on an adapter version, under the rules of `request`. */
  requestSuite: userProcedure('evaluate')
    .input(z.object({ namespace: z.string().min(1).max(100), name: z.string().min(1).max(100), version: z.number().int().positive().optional(), suiteId: z.string().min(1).max(100), suiteVersion: z.number().int().positive().optional() }))
    .mutation(async ({ ctx, input }) => {
      const page = await getAdapterPage(ctx.db, ctx, input.namespace, input.name, input.version);
      return createSuiteEvaluation(ctx.db, { versionId: page.version.id, suiteId: input.suiteId, suiteVersion: input.suiteVersion, createdBy: ctx.user.id, namespaceId: await evaluationNamespace(ctx, page) });
    }),

  registerSuite: adminProcedure
    .input(z.object({
      id: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,99}$/), displayName: z.string().min(1).max(200), description: z.string().max(4000),
      domain: z.string().min(1).max(50), seed: z.number().int().nonnegative().max(2 ** 31 - 1),
      tasks: z.array(z.object({ taskId: z.string().min(1).max(100), numFewshot: z.number().int().nonnegative().max(25), limit: z.number().int().positive().nullable().default(null) })).min(1).max(50),
    }))
    .mutation(({ ctx, input }) => registerSuite(ctx.db, input)),

  beginTaskUpload: adminProcedure
    .input(z.object({ file: uploadFile }))
    .mutation(({ ctx, input }) => beginUpload(ctx.db, { userId: ctx.user.id, purpose: 'benchmark', files: [input.file] })),

  registerTask: adminProcedure
    .input(z.object({
      uploadId: z.string().uuid(), id: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,99}$/), displayName: z.string().min(1).max(200),
      description: z.string().max(4000), domain: z.string().min(1).max(50), itemCount: z.number().int().positive(),
    }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'benchmark');
      if (isVerifying(files)) return files;
      const [file] = files;
      const task = await registerTask(ctx.db, { ...input, file: file! });
      await closeUpload(ctx.db, input.uploadId);
      return task;
    }),
});
