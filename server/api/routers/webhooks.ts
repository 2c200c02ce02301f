import { z } from 'zod';
import { deleteWebhook, getWebhook, setWebhook } from '../../services/webhooks';
import { router, userProcedure } from '../trpc';

// The webhook is the caller's own setting: changing it needs the `write` scope, reading it `read`.
// NOTE: the `admin` scope would suit a setting that sends job data elsewhere, but only site
// administrators may hold it on a token, so other users could then set a webhook only in the browser.
export const webhooksRouter = router({
  get: userProcedure('read').query(({ ctx }) => getWebhook(ctx.db, ctx.user.id)),

  // Returns the new signing secret, which no later call returns again.
  set: userProcedure('write')
    .input(z.object({ url: z.string().min(1).max(2000) }))
    .mutation(({ ctx, input }) => setWebhook(ctx.db, ctx.user.id, input.url)),

  delete: userProcedure('write').mutation(({ ctx }) => deleteWebhook(ctx.db, ctx.user.id)),
});
