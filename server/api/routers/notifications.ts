import { z } from 'zod';
import { listNotifications, markNotificationsRead } from '../../services/notifications';
import { router, userProcedure } from '../trpc';

// Notifications belong to the caller alone, so no namespace rule applies.
export const notificationsRouter = router({
  list: userProcedure('read').query(({ ctx }) => listNotifications(ctx.db, ctx.user.id)),

  // Without `ids`, marks every unread notification of the caller. It changes only the caller's
  // own read markers, so a read-only token may do it.
  markRead: userProcedure('read')
    .input(z.object({ ids: z.array(z.string().uuid()).min(1).max(100).optional() }).optional())
    .mutation(({ ctx, input }) => markNotificationsRead(ctx.db, ctx.user.id, input?.ids)),
});
