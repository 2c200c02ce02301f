import { TRPCError } from '@trpc/server';

export function badRequest(message: string): TRPCError {
  return new TRPCError({ code: 'BAD_REQUEST', message });
}

export function notFound(what: string): TRPCError {
  return new TRPCError({ code: 'NOT_FOUND', message: `${what} not found` });
}

/** NOT_FOUND that names what exists instead, for public catalogues such as tasks and suites. */
export function notFoundAmong(what: string, known: string[]): TRPCError {
  const shown = known.slice(0, 20).join(', ');
  const more = known.length > 20 ? ` and ${known.length - 20} more` : '';
  const hint = known.length === 0 ? '; none is registered yet' : `; known: ${shown}${more}`;
  return new TRPCError({ code: 'NOT_FOUND', message: `${what} not found${hint}` });
}

export function conflict(message: string): TRPCError {
  return new TRPCError({ code: 'CONFLICT', message });
}
