import { z } from 'zod';
import { createBaseExportJob, createExportJob, edgeDownloadUrl, getEdge } from '../../services/edge';
import { adminProcedure, namespaceProcedure, publicProcedure, router } from '../trpc';

const versionRef = z.object({
  namespace: z.string().min(1).max(100), name: z.string().min(1).max(100), version: z.number().int().positive().optional(),
});

export const edgeRouter = router({
  /** The newest ONNX edge bundle of a version, its report and the newest export job. */
  get: publicProcedure.input(versionRef).query(({ ctx, input }) => getEdge(ctx.db, ctx, input)),

  /** A presigned download of one file of the newest edge bundle. */
  downloadUrl: publicProcedure
    .input(versionRef.extend({ path: z.string().min(1).max(200) }))
    .mutation(({ ctx, input }) => edgeDownloadUrl(ctx.db, ctx, input)),

  /**
   * Queues an ONNX export of a version. Only members of the adapter's namespace may request
   * one, because the bundle is stored with the version and costs runner time. The job
   * belongs to that namespace, so its members can follow it on the jobs pages.
   */
  requestExport: namespaceProcedure('write', 'member', { from: 'adapter', redirects: true })
    .input(versionRef.extend({
      loraInputs: z.boolean().default(false),
      maxRank: z.number().int().min(1).max(4096).default(64),
      taskLimit: z.number().int().min(1).max(200).default(8),
    }))
    .mutation(({ ctx, input }) => createExportJob(ctx.db, ctx, { ...input, createdBy: ctx.user.id })),

  /**
   * Queues an export of a base model's playground graph (LoRA factors as inputs), stored with
   * the base model as its onnx/ files. Admins only, like registering the base model.
   */
  requestBaseExport: adminProcedure
    .input(z.object({ baseModelId: z.string().min(1).max(100), maxRank: z.number().int().min(1).max(4096).default(64) }))
    .mutation(({ ctx, input }) => createBaseExportJob(ctx.db, { ...input, namespaceId: ctx.user.namespaceId, createdBy: ctx.user.id })),
});
