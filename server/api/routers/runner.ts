import { z } from 'zod';
import { capabilities, checkpointFile, completeJob, lease, reportEvents, saveCheckpoint } from '../../contracts/runner';
import { createRunnerToken } from '../../services/accounts';
import {
  claimJob, completeJob as complete, heartbeat, outputUploadUrls, registerRunner, releaseJob, reportEvents as report, saveCheckpoint as recordCheckpoint,
} from '../../services/jobs';
import { outputFile } from '../../contracts/runner';
import { adminProcedure, router, runnerProcedure } from '../trpc';

export const runnerRouter = router({
  createToken: adminProcedure
    .input(z.object({ name: z.string().min(1).max(100) }))
    .mutation(({ ctx, input }) => createRunnerToken(ctx.db, { userId: ctx.user.id, name: input.name })),

  register: runnerProcedure
    .input(z.object({ name: z.string().min(1).max(200), capabilities }))
    .mutation(({ ctx, input }) => registerRunner(ctx.db, ctx.runnerTokenId, input.name, input.capabilities)),

  claim: runnerProcedure
    .input(z.object({ runnerId: z.string().uuid() }))
    .mutation(async ({ ctx, input }) => ({ job: await claimJob(ctx.db, ctx.runnerTokenId, input.runnerId) })),

  heartbeat: runnerProcedure.input(lease).mutation(({ ctx, input }) => heartbeat(ctx.db, input.jobId, input.leaseToken)),

  report: runnerProcedure.input(reportEvents).mutation(({ ctx, input }) => report(ctx.db, input.jobId, input.leaseToken, input.events)),

  uploadUrls: runnerProcedure
    .input(lease.extend({ files: z.array(z.union([outputFile, checkpointFile])).min(1).max(64) }))
    .mutation(async ({ ctx, input }) => ({ files: await outputUploadUrls(ctx.db, input.jobId, input.leaseToken, input.files) })),

  /** Records a checkpoint whose files were PUT through uploadUrls. */
  checkpoint: runnerProcedure.input(saveCheckpoint).mutation(({ ctx, input }) => recordCheckpoint(ctx.db, input)),

  /** Gives the job back to the queue (a draining runner); the next attempt resumes from the checkpoint. */
  release: runnerProcedure
    .input(lease.extend({ reason: z.string().min(1).max(500) }))
    .mutation(({ ctx, input }) => releaseJob(ctx.db, input)),

  complete: runnerProcedure.input(completeJob).mutation(({ ctx, input }) => complete(ctx.db, input)),
});
