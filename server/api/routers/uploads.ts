import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { eq } from 'drizzle-orm';
import { uploadSessions } from '@/drizzle/schema';
import { notFound } from '../../services/errors';
import { resumeUpload } from '../../services/uploads';
import { router, userProcedure } from '../trpc';

// The scope that began an upload of each purpose; resuming needs the same one.
const SCOPE_OF_PURPOSE = { adapter: 'write', dataset: 'fine-tune', 'base-model': 'admin', benchmark: 'admin', 'job-output': 'admin' } as const;

export const uploadsRouter = router({
  /** Says which parts of an open upload have arrived and presigns fresh URLs for the rest. */
  resume: userProcedure('read')
    .input(z.object({ uploadId: z.string().uuid() }))
    .mutation(async ({ ctx, input }) => {
      const [session] = await ctx.db.select({ purpose: uploadSessions.purpose, userId: uploadSessions.userId }).from(uploadSessions).where(eq(uploadSessions.id, input.uploadId)).limit(1);
      if (!session || session.userId !== ctx.user.id) throw notFound(`open upload ${input.uploadId}`);
      const scope = SCOPE_OF_PURPOSE[session.purpose];
      if (ctx.scopes && !ctx.scopes.includes(scope)) throw new TRPCError({ code: 'FORBIDDEN', message: `this API token lacks the "${scope}" scope this upload needs` });
      return resumeUpload(ctx.db, input.uploadId, ctx.user.id);
    }),
});
