import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { queueMetricsRecord } from '@/infra/ops/emf';
import { METRICS_NAMESPACE, QUEUE_METRICS } from '@/infra/lib/names';
import { appSettingsFromSecret, databaseUrlFromSecret, loadCloudSecrets } from '@/server/cloud-secrets';
import { parseEnv } from '@/server/env';
import { prometheusText } from '@/server/metrics';
import { checkS3OriginAllowed } from '@/server/startup';

const base = {
  S3_ENDPOINT: 'https://s3.eu-west-1.amazonaws.com',
  S3_BUCKET: 'adapters-dev',
  NEXTAUTH_SECRET: 'a-secret-of-sufficient-length',
};

function errorOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return (error as Error).message;
  }
  return '';
}

describe('server settings', () => {
  it('production requires an https NEXTAUTH_URL', () => {
    expect(errorOf(() => parseEnv({ ...base, NODE_ENV: 'production' }))).toContain('NEXTAUTH_URL: NEXTAUTH_URL is required in production');
    expect(errorOf(() => parseEnv({ ...base, NODE_ENV: 'production', NEXTAUTH_URL: 'http://adapters.example.com' }))).toContain('NEXTAUTH_URL must use https in production');
    expect(parseEnv({ ...base, NODE_ENV: 'production', NEXTAUTH_URL: 'https://adapters.example.com' }).NEXTAUTH_URL).toBe('https://adapters.example.com');
  });

  it('production allows http on loopback', () => {
    for (const url of ['http://127.0.0.1:3500', 'http://localhost:3000', 'http://[::1]:3000']) {
      expect(parseEnv({ ...base, NODE_ENV: 'production', NEXTAUTH_URL: url }).NEXTAUTH_URL).toBe(url);
    }
  });

  it('S3 keys come in pairs or not at all', () => {
    expect(errorOf(() => parseEnv({ ...base, S3_ACCESS_KEY_ID: 'key' }))).toContain('set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither');
    const roleCredentials = parseEnv(base);
    expect(roleCredentials.S3_ACCESS_KEY_ID).toBeUndefined();
    expect(roleCredentials.S3_SECRET_ACCESS_KEY).toBeUndefined();
  });

  it('serverless database settings', () => {
    const env = parseEnv({ ...base, DATABASE_POOL_MAX: '2', DATABASE_MIGRATE_ON_START: 'false' });
    expect(env.DATABASE_POOL_MAX).toBe(2);
    expect(env.DATABASE_MIGRATE_ON_START).toBe(false);
    expect(parseEnv(base).DATABASE_MIGRATE_ON_START).toBe(true);
    expect(errorOf(() => parseEnv({ ...base, DATABASE_MIGRATE_ON_START: 'no' }))).toContain('DATABASE_MIGRATE_ON_START');
    expect(errorOf(() => parseEnv({ ...base, DATABASE_POOL_MAX: '0' }))).toContain('DATABASE_POOL_MAX');
  });

  it('every invalid setting is listed at once', () => {
    const message = errorOf(() => parseEnv({ NEXTAUTH_SECRET: 'short', S3_ENDPOINT: 'not a url', JOB_LEASE_SECONDS: '1' }));
    expect(message).toContain('S3_ENDPOINT must be a URL');
    expect(message).toContain('S3_BUCKET');
    expect(message).toContain('NEXTAUTH_SECRET must be at least 16 characters');
    expect(message).toContain('JOB_LEASE_SECONDS');
    expect(message).toContain('See .env.example for every setting.');
  });
});

describe('S3 origin in the content security policy', () => {
  it('accepts the build origin', () => {
    expect(() => checkS3OriginAllowed('http://127.0.0.1:8833/', 'http://127.0.0.1:8833')).not.toThrow();
    expect(() => checkS3OriginAllowed('http://127.0.0.1:8833', undefined)).not.toThrow();
  });

  it('rejects another origin', () => {
    expect(() => checkS3OriginAllowed('https://s3.eu-west-1.amazonaws.com', 'http://127.0.0.1:8833')).toThrow(/rebuild with S3_ENDPOINT=https:\/\/s3\.eu-west-1\.amazonaws\.com/);
    expect(() => checkS3OriginAllowed('https://s3.eu-west-1.amazonaws.com', '')).toThrow(/S3_ENDPOINT was unset at build time/);
  });
});

describe('cloud secrets', () => {
  it('RDS secret becomes a verified TLS URL', () => {
    const url = databaseUrlFromSecret(JSON.stringify({ engine: 'postgres', host: 'db.cluster-x.eu-west-1.rds.amazonaws.com', port: 5432, username: 'adapters', password: 'p@ss/w:rd', dbname: 'adapters' }), 'arn:db');
    expect(url).toBe('postgres://adapters:p%40ss%2Fw%3Ard@db.cluster-x.eu-west-1.rds.amazonaws.com:5432/adapters?sslmode=verify-full');
    expect(new URL(url).password).toBe('p%40ss%2Fw%3Ard');
  });

  it('connection string secret is used as is', () => {
    const neon = 'postgresql://user:pw@ep-x.eu-central-1.aws.neon.tech/adapters?sslmode=require';
    expect(databaseUrlFromSecret(`${neon}\n`, 'arn:neon')).toBe(neon);
  });

  it('malformed database secrets are rejected', () => {
    expect(errorOf(() => databaseUrlFromSecret('not a url', 'arn:bad'))).toBe('database secret arn:bad is neither a postgres:// URL nor JSON');
    expect(errorOf(() => databaseUrlFromSecret('{"host":"h"}', 'arn:bad'))).toContain('lacks host, username or password');
  });

  it('app secret accepts only known keys', () => {
    expect(appSettingsFromSecret('{"NEXTAUTH_SECRET":"x"}', 'arn:app')).toEqual({ NEXTAUTH_SECRET: 'x' });
    expect(errorOf(() => appSettingsFromSecret('{"NEXTAUTH_SECRT":"x"}', 'arn:app'))).toContain('unknown key NEXTAUTH_SECRT');
    expect(errorOf(() => appSettingsFromSecret('[]', 'arn:app'))).toContain('is not a JSON object');
  });

  describe('from a Secrets Manager endpoint', () => {
    // A local stand-in for the Secrets Manager JSON API (GetSecretValue only).
    const values: Record<string, string> = {
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db': JSON.stringify({ host: 'db.internal', port: 5432, username: 'adapters', password: 'pw', dbname: 'adapters' }),
      'arn:aws:secretsmanager:eu-west-1:123456789012:secret:app': JSON.stringify({ NEXTAUTH_SECRET: 'generated-secret-value-1234567890' }),
    };
    const requests: { target: string; secretId: string }[] = [];
    let server: http.Server;
    let client: SecretsManagerClient;

    beforeAll(async () => {
      server = http.createServer((request, response) => {
        let body = '';
        request.on('data', (chunk: Buffer) => (body += chunk.toString()));
        request.on('end', () => {
          const secretId = JSON.parse(body).SecretId as string;
          requests.push({ target: String(request.headers['x-amz-target']), secretId });
          const value = values[secretId];
          response.setHeader('Content-Type', 'application/x-amz-json-1.1');
          if (value === undefined) {
            response.statusCode = 400;
            response.end(JSON.stringify({ __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." }));
            return;
          }
          response.end(JSON.stringify({ ARN: secretId, Name: 'secret', SecretString: value, VersionId: 'v1' }));
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      client = new SecretsManagerClient({
        endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        maxAttempts: 1,
      });
    });

    afterAll(() => server.close());

    it('loads both secrets into the environment', async () => {
      const env: Record<string, string | undefined> = { DATABASE_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db', APP_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:app' };
      expect(await loadCloudSecrets(env, client)).toEqual(['DATABASE_URL', 'NEXTAUTH_SECRET']);
      expect(env.DATABASE_URL).toBe('postgres://adapters:pw@db.internal:5432/adapters?sslmode=verify-full');
      expect(env.NEXTAUTH_SECRET).toBe('generated-secret-value-1234567890');
      expect(requests.map((r) => r.target)).toEqual(['secretsmanager.GetSecretValue', 'secretsmanager.GetSecretValue']);
    });

    it('missing secret fails the start', async () => {
      await expect(loadCloudSecrets({ APP_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:gone' }, client)).rejects.toThrow(/can't find the specified secret/);
    });

    it('both DATABASE_URL and its secret is an error', async () => {
      await expect(loadCloudSecrets({ DATABASE_URL: 'postgres://x', DATABASE_SECRET_ARN: 'arn:db' }, client)).rejects.toThrow('set DATABASE_URL or DATABASE_SECRET_ARN, not both');
    });

    it('no secret names leaves the environment alone', async () => {
      const before = requests.length;
      const env: Record<string, string | undefined> = { DATABASE_URL: 'postgres://local' };
      expect(await loadCloudSecrets(env, client)).toEqual([]);
      expect(env).toEqual({ DATABASE_URL: 'postgres://local' });
      expect(requests.length).toBe(before);
    });
  });
});

describe('queue metrics', () => {
  it('Prometheus text', () => {
    const text = prometheusText({ queued: 3, running: 2 });
    expect(text).toContain('\nadapters_jobs_queued 3\n');
    expect(text).toContain('\nadapters_jobs_running 2\n');
    expect(text).toContain('\nadapters_jobs_backlog 5\n');
    expect(text.endsWith('\n')).toBe(true);
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^(# (HELP|TYPE) adapters_jobs_\w+ .+|adapters_jobs_\w+ \d+)$/);
  });

  it('embedded metric format record', () => {
    const record = queueMetricsRecord('prod', { queued: 4, running: 1 }, 1_700_000_000_000) as Record<string, any>;
    expect(record._aws.Timestamp).toBe(1_700_000_000_000);
    const directive = record._aws.CloudWatchMetrics[0];
    expect(directive.Namespace).toBe(METRICS_NAMESPACE);
    expect(directive.Dimensions).toEqual([['Stage']]);
    expect(record.Stage).toBe('prod');
    // Every declared metric has a numeric value at the top level, as the format requires.
    for (const metric of directive.Metrics) expect(typeof record[metric.Name]).toBe('number');
    expect(record[QUEUE_METRICS.queued]).toBe(4);
    expect(record[QUEUE_METRICS.backlog]).toBe(5);
  });

  it('KEDA scales the runner Deployment on an exposed metric', () => {
    const documents = (file: string) => parseAllDocuments(fs.readFileSync(file, 'utf8')).map((doc) => doc.toJS());
    const [deployment] = documents('infra/runner/kubernetes.yaml');
    const keda = documents('infra/runner/keda.yaml');
    const scaledObject = keda.find((doc) => doc.kind === 'ScaledObject');
    const auth = keda.find((doc) => doc.kind === 'TriggerAuthentication');

    expect(scaledObject.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    const trigger = scaledObject.spec.triggers[0];
    expect(trigger.type).toBe('metrics-api');
    expect(new URL(trigger.metadata.url).pathname).toBe('/api/metrics');
    expect(trigger.metadata.format).toBe('prometheus');
    expect(prometheusText({ queued: 0, running: 0 })).toContain(`\n${trigger.metadata.valueLocation} 0\n`);
    expect(trigger.authenticationRef.name).toBe(auth.metadata.name);
    // The scaler authenticates with the same secret the runners read their token from.
    const runnerSecret = deployment.spec.template.spec.containers[0].envFrom[0].secretRef.name;
    expect(auth.spec.secretTargetRef[0]).toMatchObject({ parameter: 'token', name: runnerSecret, key: 'RUNNER_TOKEN' });
    // Scale-downs must leave a draining runner time to checkpoint, upload and release its job:
    // the worker's 20 s grace to save, then the upload.
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(120);
  });
});
