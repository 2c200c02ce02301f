import type { OpenNextConfig } from '@opennextjs/aws/types/open-next';

// OpenNext settings for the AWS deployment in infra/. The server function responds through a
// streaming Lambda function URL. Prerendered pages live in the assets bucket (CACHE_BUCKET_*
// settings from infra/lib/web.ts). The app uses neither tag revalidation nor ISR, so it needs
// no DynamoDB tag cache and no SQS revalidation queue.
// Build with `npm run build:lambda` (infra/build-lambda.mjs), not `open-next build`, which fails
// on the image optimization function with Next.js 16.5. The bundle's handler is tested in a local
// Node process (tests/integration/lambda.test.ts) but has not been run on Lambda itself.
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
