/**
 * Next.js calls register() once per server process before it serves requests. Invalid settings
 * end the process with exit code 1, because Next.js would otherwise log the error and keep
 * serving failing requests.
 */
export async function register() {
  if (process.env.NEXT_RUNTIME !== 'nodejs') return;
  const { startServer } = await import('./server/startup');
  try {
    await startServer();
  } catch (error) {
    const { logger } = await import('./server/logger');
    logger.fatal({ err: error }, 'server start failed');
    process.exit(1);
  }
}
