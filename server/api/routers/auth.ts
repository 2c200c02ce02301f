import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { userByCredentials } from '../../auth';
import { createApiToken, signUp, tokenScopes } from '../../services/accounts';
import { publicProcedure, router, userProcedure } from '../trpc';

const tokenRequest = z.object({
  name: z.string().min(1).max(100),
  scopes: z.array(z.enum(tokenScopes)).default(['read', 'write', 'fine-tune', 'evaluate']),
  expiresInDays: z.number().int().min(1).max(3650).nullable().default(null),
});

export const authRouter = router({
  signUp: publicProcedure
    .input(z.object({ email: z.string().email(), password: z.string().max(1000), namespace: z.string() }))
    .mutation(({ ctx, input }) => signUp(ctx.db, input)),

  me: publicProcedure.query(({ ctx }) => ctx.user && { email: ctx.user.email, namespace: ctx.user.namespace, isAdmin: ctx.user.isAdmin }),

  /** Exchanges email and password for an API token, for the CLI's `login`. */
  issueToken: publicProcedure
    .input(tokenRequest.extend({ email: z.string().email(), password: z.string().max(1000) }))
    .mutation(async ({ ctx, input }) => {
      const user = await userByCredentials(ctx.db, input.email, input.password);
      if (!user) throw new TRPCError({ code: 'UNAUTHORIZED', message: `wrong email or password for ${input.email}` });
      if (input.scopes.includes('admin') && !user.isAdmin) throw new TRPCError({ code: 'FORBIDDEN', message: 'only administrators may hold the admin scope' });
      return { ...(await createApiToken(ctx.db, { userId: user.id, name: input.name, scopes: input.scopes, expiresInDays: input.expiresInDays })), namespace: user.namespace };
    }),

  createToken: userProcedure('admin').input(tokenRequest).mutation(({ ctx, input }) =>
    createApiToken(ctx.db, { userId: ctx.user.id, name: input.name, scopes: input.scopes, expiresInDays: input.expiresInDays })),
});
