import { z } from 'zod';
import { MAX_MIX_RATIO } from '../../formats/dataset-mix';
import { HARDWARE_CLASSES } from '../../formats/throughput';
import { checkDatasetFile, createDatasetVersion, deriveDatasetVersion, GENERAL_SET, getDatasetVersion, listDatasets } from '../../services/datasets';
import { beginUpload, closeUpload, finishUpload, uploadFile } from '../../services/uploads';
import { isVerifying } from '@/lib/upload-protocol';
import { namespaceProcedure, publicProcedure, router, userProcedure } from '../trpc';

// Data sets are private to their namespace: members add them, viewers read them.
const namespaceInput = z.object({ namespace: z.string().min(1).max(100).optional() });
const columnName = z.string().min(1).max(200).optional();
const maxSeqLength = z.number().int().min(16).max(32768);

export const cleaningOptions = z.object({
  normalizeUnicode: z.boolean().default(false),
  normalizeWhitespace: z.boolean().default(false),
  maskEmails: z.boolean().default(false),
  maskPhones: z.boolean().default(false),
  maskIds: z.boolean().default(false),
  dropEmpty: z.boolean().default(false),
  dropOverLong: z.boolean().default(false),
  dedupeExact: z.boolean().default(false),
  dedupeNear: z.boolean().default(false),
});

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
   * CSV and TSV files need `mapping`: the header names of the prompt and completion columns
   * (and optionally a system column), or of a text column.
   */
  create: namespaceProcedure('fine-tune', 'member', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.extend({
      uploadId: z.string().uuid(), name: z.string().min(1).max(96), baseModelId: z.string().min(1).max(200),
      mapping: z.object({ prompt: columnName, completion: columnName, text: columnName, system: columnName }).optional(),
      maxSeqLength: maxSeqLength.optional(),
    }))
    .mutation(async ({ ctx, input }) => {
      const files = await finishUpload(ctx.db, input.uploadId, ctx.user.id, 'dataset');
      if (isVerifying(files)) return files;
      const [file] = files;
      const created = await createDatasetVersion(ctx.db, {
        namespaceId: ctx.access.namespaceId, name: input.name, file: file!, baseModelId: input.baseModelId, mapping: input.mapping, maxSeqLength: input.maxSeqLength,
      });
      await closeUpload(ctx.db, input.uploadId);
      return created;
    }),

  /**
   * Cleans a stored version, splits off a validation part and mixes in general data, as a new
   * version of the same namespace; the source and a mixed-in data set must belong to it.
   */
  derive: namespaceProcedure('fine-tune', 'member', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.extend({
      sourceVersionId: z.number().int().positive(),
      baseModelId: z.string().min(1).max(200),
      maxSeqLength,
      cleaning: cleaningOptions,
      split: z.object({ validationFraction: z.number().min(0).max(0.5), seed: z.number().int().min(0) }).nullable().default(null),
      mix: z.object({
        source: z.union([z.literal(GENERAL_SET), z.object({ datasetVersionId: z.number().int().positive() })]),
        ratio: z.number().min(0).max(MAX_MIX_RATIO),
        seed: z.number().int().min(0),
      }).nullable().default(null),
    }))
    .mutation(({ ctx, input }) => {
      const { namespace: _namespace, ...options } = input;
      return deriveDatasetVersion(ctx.db, { namespaceId: ctx.access.namespaceId, ...options });
    }),

  get: namespaceProcedure('read', 'viewer', { from: 'datasetVersion', field: 'id' })
    .input(z.object({ id: z.number().int().positive() }))
    .query(async ({ ctx, input }) => {
      const found = await getDatasetVersion(ctx.db, input.id);
      return {
        id: found.version.id, name: found.name, version: found.version.version, valid: found.version.valid, report: found.version.report,
        lineage: found.version.lineage, sha256: found.version.sha256, size: found.version.size,
      };
    }),

  list: namespaceProcedure('read', 'viewer', { from: 'namespace', field: 'namespace', private: true })
    .input(namespaceInput.optional())
    .query(({ ctx }) => listDatasets(ctx.db, ctx.access.namespaceId)),

  /** Training speed per hardware class behind the wizard's time estimates; see server/formats/throughput.ts. */
  hardware: publicProcedure.query(() => HARDWARE_CLASSES),
});
