import path from 'node:path';
import { CustomResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventTargets from 'aws-cdk-lib/aws-events-targets';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { StageConfig } from './config';
import { hashFolder } from './build-output';

export interface OpsProps {
  config: StageConfig;
  // Output folder of `npm run build:ops`: index.mjs and the SQL migrations.
  opsDir: string;
  environment: Record<string, string>;
  vpc?: ec2.IVpc;
}

/**
 * The operations function (infra/ops/handler.ts): applies database migrations as a deployment
 * step, and publishes the job queue's depth as CloudWatch metrics on a schedule.
 */
export class Ops extends Construct {
  readonly opsFunction: lambda.Function;
  // Completes once the migrations are applied; the server function waits for it.
  readonly migrations: CustomResource;
  readonly securityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: OpsProps) {
    super(scope, id);
    const { config } = props;

    if (props.vpc) {
      this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', { vpc: props.vpc, description: 'operations function', allowAllOutbound: true });
    }
    const logGroup = new logs.LogGroup(this, 'Logs', { retention: config.web.logRetentionDays as logs.RetentionDays, removalPolicy: RemovalPolicy.DESTROY });
    this.opsFunction = new lambda.Function(this, 'Function', {
      code: lambda.Code.fromAsset(props.opsDir),
      handler: 'index.handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      memorySize: 512,
      // Long enough for a migration that rewrites a large table; the queue poll takes a second.
      timeout: Duration.minutes(10),
      logGroup,
      environment: { ...props.environment, STAGE: config.stage },
      ...(props.vpc ? { vpc: props.vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }, securityGroups: [this.securityGroup!] } : {}),
    });

    const provider = new cr.Provider(this, 'MigrationsProvider', { onEventHandler: this.opsFunction });
    this.migrations = new CustomResource(this, 'Migrations', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::DatabaseMigrations',
      // A new hash makes CloudFormation update the resource, which applies the new migrations.
      properties: { MigrationsHash: hashFolder(path.join(props.opsDir, 'migrations')) },
    });

    new events.Rule(this, 'QueueMetricsSchedule', {
      description: 'Publishes the job queue depth that scales the runner fleet',
      schedule: events.Schedule.rate(Duration.minutes(config.runners.queueMetricsIntervalMinutes)),
      targets: [new eventTargets.LambdaFunction(this.opsFunction, { event: events.RuleTargetInput.fromObject({ action: 'publish-queue-metrics' }) })],
    });
  }
}
