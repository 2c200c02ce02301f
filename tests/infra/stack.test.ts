import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadStageConfig, parseStageConfig, type StageConfig } from '../../infra/lib/config';
import { ARTIFACT_PREFIXES, DELETED_OBJECT_TAG, METRICS_NAMESPACE, QUEUE_METRICS } from '../../infra/lib/names';
import { MarketplaceStack } from '../../infra/lib/stack';

const stagesDir = path.resolve('infra/stages');

// Stand-ins for the OpenNext and operations builds, which take minutes and are not what these
// tests check. The stack only needs the files to exist; they are never executed.
let placeholderOpenNextDir: string;
let placeholderOpsDir: string;

function writePlaceholderBuilds(): void {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'placeholder-builds-'));
  placeholderOpenNextDir = path.join(root, 'placeholder-open-next-output');
  const server = path.join(placeholderOpenNextDir, 'server-functions', 'default');
  fs.mkdirSync(server, { recursive: true });
  fs.writeFileSync(path.join(server, 'index.mjs'), "export const handler = () => { throw new Error('placeholder asset written by tests/infra; not a build'); };\n");
  fs.mkdirSync(path.join(placeholderOpenNextDir, 'assets', '_next', 'static'), { recursive: true });
  fs.writeFileSync(path.join(placeholderOpenNextDir, 'assets', '_next', 'static', 'placeholder.txt'), 'placeholder\n');
  fs.mkdirSync(path.join(placeholderOpenNextDir, 'cache'), { recursive: true });
  fs.writeFileSync(path.join(placeholderOpenNextDir, 'cache', 'placeholder.txt'), 'placeholder\n');

  placeholderOpsDir = path.join(root, 'placeholder-ops-output');
  fs.mkdirSync(placeholderOpsDir, { recursive: true });
  fs.writeFileSync(path.join(placeholderOpsDir, 'index.mjs'), "export const handler = () => { throw new Error('placeholder asset written by tests/infra; not a build'); };\n");
  fs.cpSync(path.resolve('drizzle/migrations'), path.join(placeholderOpsDir, 'migrations'), { recursive: true });
}

function synth(config: StageConfig, dirs: { openNextDir?: string; opsDir?: string } = {}): Template {
  const app = new App();
  const stack = new MarketplaceStack(app, `adapters-${config.stage}`, {
    config,
    env: { account: '123456789012', region: config.region },
    openNextDir: dirs.openNextDir ?? placeholderOpenNextDir,
    opsDir: dirs.opsDir ?? placeholderOpsDir,
  });
  return Template.fromStack(stack);
}

function withNeon(config: StageConfig): StageConfig {
  return { ...config, database: { engine: 'neon', connectionSecretName: 'adapters/dev/neon' } };
}

/** Returns the properties of the server function, the only function with NEXTAUTH_URL in its environment. */
function serverFunction(template: Template): Record<string, any> {
  const functions = Object.values(template.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { NEXTAUTH_URL: Match.anyValue() } } } }));
  expect(functions).toHaveLength(1);
  return functions[0]!.Properties;
}

describe('CDK stack', () => {
  let dev: StageConfig;
  let devTemplate: Template;

  beforeAll(() => {
    writePlaceholderBuilds();
    dev = loadStageConfig('dev', stagesDir);
    devTemplate = synth(dev);
  });

  it('artifacts bucket is private and TLS-only', () => {
    const buckets = devTemplate.findResources('AWS::S3::Bucket', { Properties: { BucketName: Match.anyValue() } });
    const [bucket] = Object.values(buckets);
    expect(Object.keys(buckets)).toHaveLength(1);
    expect(bucket!.Properties.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(bucket!.Properties.AccessControl).toBeUndefined();
    expect(bucket!.Properties.WebsiteConfiguration).toBeUndefined();

    const bucketId = Object.keys(buckets)[0]!;
    const policies = Object.values(devTemplate.findResources('AWS::S3::BucketPolicy', { Properties: { Bucket: { Ref: bucketId } } }));
    expect(policies).toHaveLength(1);
    const statements = policies[0]!.Properties.PolicyDocument.Statement as Record<string, any>[];
    expect(statements.some((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false')).toBe(true);
    // No statement grants anything to everyone.
    expect(statements.filter((s) => s.Effect === 'Allow' && (s.Principal === '*' || s.Principal?.AWS === '*'))).toEqual([]);
  });

  it('artifacts bucket allows browser uploads from the app only', () => {
    devTemplate.hasResourceProperties('AWS::S3::Bucket', {
      BucketName: Match.anyValue(),
      CorsConfiguration: {
        CorsRules: [Match.objectLike({
          AllowedMethods: Match.arrayWith(['PUT', 'GET']),
          AllowedOrigins: ['https://dev.adapters.example.com'],
        })],
      },
    });
  });

  it('artifacts bucket lifecycle rules', () => {
    const [bucket] = Object.values(devTemplate.findResources('AWS::S3::Bucket', { Properties: { BucketName: Match.anyValue() } }));
    const rules = bucket!.Properties.LifecycleConfiguration.Rules as Record<string, any>[];
    expect(rules.find((r) => r.Id === 'abort-incomplete-multipart-uploads')).toMatchObject({ Status: 'Enabled', AbortIncompleteMultipartUpload: { DaysAfterInitiation: dev.artifacts.abortIncompleteMultipartUploadDays } });
    expect(rules.find((r) => r.Id === 'expire-deleted-objects')).toMatchObject({
      Status: 'Enabled',
      ExpirationInDays: dev.artifacts.deletedObjectExpirationDays,
      TagFilters: [{ Key: DELETED_OBJECT_TAG.key, Value: DELETED_OBJECT_TAG.value }],
    });
    // Published files live under both prefixes, so nothing may expire them by age alone.
    const expiring = rules.filter((r) => r.ExpirationInDays !== undefined || r.ExpirationDate !== undefined);
    for (const rule of expiring) {
      expect(rule.TagFilters, `rule ${rule.Id} expires objects without a tag filter`).toBeDefined();
      expect([ARTIFACT_PREFIXES.blobs, ARTIFACT_PREFIXES.uploads]).not.toContain(rule.Prefix);
    }
  });

  it('server function settings', () => {
    const server = serverFunction(devTemplate);
    expect(server.Runtime).toBe('nodejs22.x');
    expect(server.Architectures).toEqual(['x86_64']);
    expect(server.MemorySize).toBe(dev.web.memoryMb);
    expect(server.Timeout).toBe(dev.web.timeoutSeconds);
    expect(server.Timeout).toBeLessThanOrEqual(60);
    expect(server.ReservedConcurrentExecutions).toBe(dev.web.reservedConcurrency);
    expect(server.VpcConfig).toBeDefined();

    const variables = server.Environment.Variables;
    expect(variables.NEXTAUTH_URL).toBe('https://dev.adapters.example.com');
    expect(variables.DATABASE_MIGRATE_ON_START).toBe('false');
    expect(variables.DATABASE_POOL_MAX).toBe(String(dev.web.databasePoolMax));
    expect(Number(variables.UPLOAD_VERIFY_SECONDS)).toBeGreaterThanOrEqual(1);
    expect(Number(variables.UPLOAD_VERIFY_SECONDS)).toBeLessThanOrEqual(dev.web.timeoutSeconds / 4);
    // Data set validation runs in the request, so the stage caps it below the local 64 MiB.
    expect(Number(variables.DATASET_MAX_BYTES)).toBeLessThanOrEqual((dev.web.timeoutSeconds / 2) * 160 * 1024);
    expect(Number(variables.DATASET_DERIVE_MAX_BYTES)).toBeLessThanOrEqual(Number(variables.DATASET_MAX_BYTES));
    expect(variables.S3_ENDPOINT).toBe('https://s3.us-east-1.amazonaws.com');
    // The function uses its IAM role for S3, so no static keys are configured.
    expect(variables.S3_ACCESS_KEY_ID).toBeUndefined();

    devTemplate.hasResourceProperties('AWS::Lambda::Url', { AuthType: 'NONE', InvokeMode: 'RESPONSE_STREAM' });
  });

  it('secrets are not in plain text', () => {
    const secretNames = ['NEXTAUTH_SECRET', 'DATABASE_URL', 'S3_SECRET_ACCESS_KEY', 'RUNNER_TOKEN'];
    for (const [id, resource] of Object.entries(devTemplate.findResources('AWS::Lambda::Function'))) {
      const variables = resource.Properties.Environment?.Variables ?? {};
      for (const name of secretNames) expect(variables[name], `${id} sets ${name} in its environment`).toBeUndefined();
    }

    // The functions get secret ARNs that point at Secrets Manager secrets of this stack.
    const variables = serverFunction(devTemplate).Environment.Variables;
    const secrets = devTemplate.findResources('AWS::SecretsManager::Secret');
    // Aurora's secret is referenced through its attachment to the cluster, whose Ref is the secret's ARN.
    const attachments = devTemplate.findResources('AWS::SecretsManager::SecretTargetAttachment');
    expect(Object.keys(attachments)).toContain(variables.DATABASE_SECRET_ARN.Ref);
    expect(Object.keys(secrets)).toContain(variables.APP_SECRET_ARN.Ref);
    for (const secret of Object.values(secrets)) {
      expect(secret.Properties.SecretString, 'a secret with a literal value').toBeUndefined();
      expect(secret.Properties.GenerateSecretString).toBeDefined();
    }

    // Aurora's master password is a dynamic reference, resolved by CloudFormation at deploy time.
    const [cluster] = Object.values(devTemplate.findResources('AWS::RDS::DBCluster'));
    expect(JSON.stringify(cluster!.Properties.MasterUserPassword)).toContain('{{resolve:secretsmanager:');
    // The runner token reaches instances through Secrets Manager at boot, not through user data.
    expect(JSON.stringify(devTemplate.toJSON())).not.toMatch(/amr_[A-Za-z0-9_-]{8}/);
    const [launchTemplate] = Object.values(devTemplate.findResources('AWS::EC2::LaunchTemplate'));
    const userData = JSON.stringify(launchTemplate!.Properties.LaunchTemplateData.UserData);
    expect(userData).toContain('aws secretsmanager get-secret-value');
    expect(userData).toContain('--env-file /etc/adapters-runner/env');
  });

  it('runner fleet scales out on queued jobs', () => {
    devTemplate.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: String(dev.runners.minInstances), MaxSize: String(dev.runners.maxInstances) });

    const metricAlarms = (name: string) => Object.values(devTemplate.findResources('AWS::CloudWatch::Alarm', {
      Properties: { Namespace: METRICS_NAMESPACE, MetricName: name, Dimensions: [{ Name: 'Stage', Value: 'dev' }] },
    }));
    const queued = metricAlarms(QUEUE_METRICS.queued);
    // Only the upper alarm: an empty queue alone must not shrink the fleet while jobs run.
    expect(queued).toHaveLength(1);
    expect(queued[0]!.Properties).toMatchObject({ ComparisonOperator: 'GreaterThanOrEqualToThreshold', Threshold: 1 });

    const policies = devTemplate.findResources('AWS::AutoScaling::ScalingPolicy', { Properties: { PolicyType: 'StepScaling', AdjustmentType: 'ChangeInCapacity' } });
    expect(Object.keys(policies)).toHaveLength(1);
    const steps = Object.values(policies)[0]!.Properties.StepAdjustments as { ScalingAdjustment: number }[];
    expect(steps.every((step) => step.ScalingAdjustment > 0)).toBe(true);
    expect(JSON.stringify(queued[0]!.Properties.AlarmActions)).toContain(Object.keys(policies)[0]);
  });

  it('runner fleet scales in only when idle', () => {
    const idle = Object.values(devTemplate.findResources('AWS::CloudWatch::Alarm', { Properties: { MetricName: QUEUE_METRICS.backlog } }));
    expect(idle).toHaveLength(1);
    expect(idle[0]!.Properties).toMatchObject({
      ComparisonOperator: 'LessThanOrEqualToThreshold',
      Threshold: 0,
      TreatMissingData: 'notBreaching',
      EvaluationPeriods: Math.ceil(dev.runners.scaleInIdleMinutes / dev.runners.queueMetricsIntervalMinutes),
      Period: dev.runners.queueMetricsIntervalMinutes * 60,
    });
    const exact = devTemplate.findResources('AWS::AutoScaling::ScalingPolicy', { Properties: { AdjustmentType: 'ExactCapacity' } });
    expect(Object.values(exact)[0]!.Properties.StepAdjustments).toEqual([{ MetricIntervalUpperBound: 0, ScalingAdjustment: dev.runners.minInstances }]);
    expect(JSON.stringify(idle[0]!.Properties.AlarmActions)).toContain(Object.keys(exact)[0]);
  });

  it('queue metrics are published on a schedule', () => {
    devTemplate.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: `rate(${dev.runners.queueMetricsIntervalMinutes} minutes)`,
      Targets: [Match.objectLike({ Input: JSON.stringify({ action: 'publish-queue-metrics' }) })],
    });
  });

  it('migrations run before the new server code', () => {
    const migrations = devTemplate.findResources('Custom::DatabaseMigrations');
    expect(Object.keys(migrations)).toHaveLength(1);
    expect(Object.values(migrations)[0]!.Properties.MigrationsHash).toMatch(/^[0-9a-f]{64}$/);

    const [serverId] = Object.entries(devTemplate.findResources('AWS::Lambda::Function', { Properties: { Environment: { Variables: { NEXTAUTH_URL: Match.anyValue() } } } })).map(([id]) => id);
    const server = devTemplate.toJSON().Resources[serverId!];
    expect(server.DependsOn).toContain(Object.keys(migrations)[0]);
  });

  it('CloudFront serves the app over https', () => {
    devTemplate.hasResourceProperties('AWS::CloudFront::Distribution', {
      DistributionConfig: Match.objectLike({
        Aliases: ['dev.adapters.example.com'],
        ViewerCertificate: Match.objectLike({ AcmCertificateArn: dev.certificateArn, MinimumProtocolVersion: 'TLSv1.2_2021' }),
        DefaultCacheBehavior: Match.objectLike({ ViewerProtocolPolicy: 'redirect-to-https' }),
        CacheBehaviors: [Match.objectLike({ PathPattern: '_next/static/*' })],
      }),
    });
  });

  it('Neon stage without AWS runners', () => {
    // Functions stay out of the VPC, and with runners on Kubernetes the AWS fleet stays empty.
    const template = synth({ ...withNeon(dev), runners: { ...dev.runners, maxInstances: 0 } });
    template.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { MinSize: '0', MaxSize: '0' });
    template.resourceCountIs('AWS::RDS::DBCluster', 0);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 1);
    const server = serverFunction(template);
    expect(server.VpcConfig).toBeUndefined();
    expect(JSON.stringify(server.Environment.Variables.DATABASE_SECRET_ARN)).toContain('secret:adapters/dev/neon');
  });

  it('prod stage retains data', () => {
    const template = synth(loadStageConfig('prod', stagesDir));
    const buckets = template.findResources('AWS::S3::Bucket', { Properties: { BucketName: Match.anyValue() } });
    expect(Object.values(buckets)[0]!.DeletionPolicy).toBe('Retain');
    template.hasResource('AWS::RDS::DBCluster', { DeletionPolicy: 'Snapshot', Properties: Match.objectLike({ DeletionProtection: true }) });
  });

  it('staging stage synthesizes', () => {
    const template = synth(loadStageConfig('staging', stagesDir));
    template.hasResourceProperties('AWS::RDS::DBCluster', { ServerlessV2ScalingConfiguration: { MinCapacity: 0.5, MaxCapacity: 4 } });
  });

  it('missing build output names the build command', () => {
    expect(() => synth(dev, { openNextDir: path.join(os.tmpdir(), 'no-such-open-next-output') })).toThrow(/run `npm run build:lambda` first/);
    expect(() => synth(dev, { opsDir: path.join(os.tmpdir(), 'no-such-ops-output') })).toThrow(/npm run build:ops/);
  });
});

describe('stage configuration', () => {
  const valid = () => JSON.parse(fs.readFileSync(path.join(stagesDir, 'dev.json'), 'utf8'));

  it('rejects a certificate outside us-east-1', () => {
    const raw = { ...valid(), certificateArn: 'arn:aws:acm:eu-west-1:111111111111:certificate/00000000-0000-0000-0000-000000000000' };
    expect(() => parseStageConfig(raw, 'dev.json')).toThrow(/certificateArn: must be an ACM certificate ARN in us-east-1/);
  });

  it('rejects a timeout beyond CloudFront', () => {
    const raw = valid();
    raw.web.timeoutSeconds = 120;
    expect(() => parseStageConfig(raw, 'dev.json')).toThrow(/web\.timeoutSeconds/);
  });

  it('rejects inverted capacity ranges', () => {
    const raw = valid();
    raw.database.minCapacityAcu = 8;
    raw.database.maxCapacityAcu = 2;
    raw.runners.minInstances = 3;
    raw.runners.maxInstances = 1;
    let message = '';
    try {
      parseStageConfig(raw, 'dev.json');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('invalid stage configuration in dev.json');
    expect(message).toContain('database.minCapacityAcu: minCapacityAcu must not exceed maxCapacityAcu');
    expect(message).toContain('runners.minInstances: minInstances must not exceed maxInstances');
  });

  it('rejects a poll that keeps Aurora awake', () => {
    const raw = valid();
    raw.database = { engine: 'aurora-serverless-v2', minCapacityAcu: 0, maxCapacityAcu: 2, autoPauseMinutes: 10 };
    raw.runners.queueMetricsIntervalMinutes = 5;
    expect(() => parseStageConfig(raw, 'dev.json')).toThrow(/runners\.queueMetricsIntervalMinutes: must exceed database\.autoPauseMinutes \(10\)/);
    raw.database.minCapacityAcu = 0.5;
    expect(parseStageConfig(raw, 'dev.json').runners.queueMetricsIntervalMinutes).toBe(5);
  });

  it('rejects non-GPU runner instances', () => {
    const raw = valid();
    raw.runners.instanceTypes = ['m7i.large'];
    expect(() => parseStageConfig(raw, 'dev.json')).toThrow(/runners\.instanceTypes\.0: must be a GPU instance type/);
  });

  it('unknown stage lists the known ones', () => {
    expect(() => loadStageConfig('qa', stagesDir)).toThrow(/unknown stage "qa".*stages: dev, prod, staging/);
  });
});
