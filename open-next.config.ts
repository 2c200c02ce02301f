import type { OpenNextConfig } from '@opennextjs/aws/types/open-next';

// OpenNext settings for the AWS deployment in infra/. The server function responds through a
// streaming Lambda function URL. Prerendered pages live in the assets bucket (CACHE_BUCKET_*
// settings from infra/lib/web.ts). The app uses neither tag revalidation nor ISR, so it needs
// no DynamoDB tag cache and no SQS revalidation queue.
// NOTE: `open-next build` stops before writing its output manifest here (see docs/deploy.md),
// so this configuration has not been run on Lambda.
const config = {
  default: {
    override: {
      wrapper: 'aws-lambda-streaming',
      incrementalCache: 's3-lite',
      tagCache: 'dummy',
      queue: 'dummy',
    },
  },
  dangerous: { disableTagCache: true },
} satisfies OpenNextConfig;

export default config;
