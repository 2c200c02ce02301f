import { Aws, CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ArtifactsBucket } from './artifacts';
import { checkBuildOutput, OPEN_NEXT_REQUIRED, OPS_REQUIRED } from './build-output';
import type { StageConfig } from './config';
import { Database } from './database';
import { Ops } from './ops';
import { RunnerFleet } from './runners';
import { Web } from './web';

export interface MarketplaceStackProps extends StackProps {
  config: StageConfig;
  // Output folder of the OpenNext build (`npm run build:lambda`).
  openNextDir: string;
  // Output folder of `npm run build:ops`.
  opsDir: string;
}

/** One stage of the adapter marketplace: web tier, artifacts bucket, database, operations function and GPU runners. */
export class MarketplaceStack extends Stack {
  constructor(scope: Construct, id: string, props: MarketplaceStackProps) {
    super(scope, id, props);
    const { config } = props;
    checkBuildOutput(props.openNextDir, OPEN_NEXT_REQUIRED, 'npm run build:lambda');
    checkBuildOutput(props.opsDir, OPS_REQUIRED, 'npm run build:ops');

    const appOrigin = `https://${config.domainName}`;

    // No NAT gateway: the functions reach S3 and Secrets Manager through VPC endpoints, and
    // runners sit in public subnets without inbound rules.
    const vpc = new ec2.Vpc(this, 'Vpc', {
      maxAzs: 2,
      natGateways: 0,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
    });

    const database = new Database(this, 'Database', { config, vpc });
    const functionVpc = database.inVpc ? vpc : undefined;
    if (functionVpc) {
      vpc.addInterfaceEndpoint('SecretsManager', { service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, subnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } });
    }

    // The bucket name is fixed from the stage, account and region so that the functions'
    // settings and policies need no reference to the bucket resource.
    const bucketName = `adapters-${config.stage}-artifacts-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
    const artifacts = new ArtifactsBucket(this, 'Artifacts', { config, bucketName, appOrigin });

    // NEXTAUTH_SECRET is generated into Secrets Manager; the template carries only the ARN.
    const appSecret = new secretsmanager.Secret(this, 'AppSecret', {
      secretName: `adapters/${config.stage}/app`,
      description: 'App settings read at start-up (server/cloud-secrets.ts)',
      generateSecretString: { secretStringTemplate: '{}', generateStringKey: 'NEXTAUTH_SECRET', passwordLength: 48, excludePunctuation: true },
    });

    const sharedEnvironment: Record<string, string> = {
      DATABASE_SECRET_ARN: database.secret.secretArn,
      // Lambda's Node.js runtimes ship the RDS certificate authorities in this file; without it
      // sslmode=verify-full cannot verify Aurora's certificate.
      NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
      LOG_LEVEL: config.web.logLevel,
    };

    const ops = new Ops(this, 'Ops', { config, opsDir: props.opsDir, environment: sharedEnvironment, vpc: functionVpc });
    database.secret.grantRead(ops.opsFunction);
    if (ops.securityGroup) database.allowFrom(ops.securityGroup);

    const web = new Web(this, 'Web', {
      config,
      openNextDir: props.openNextDir,
      vpc: functionVpc,
      environment: {
        ...sharedEnvironment,
        APP_SECRET_ARN: appSecret.secretArn,
        NEXTAUTH_URL: appOrigin,
        S3_ENDPOINT: `https://s3.${config.region}.amazonaws.com`,
        S3_REGION: config.region,
        S3_BUCKET: bucketName,
        DATABASE_POOL_MAX: String(config.web.databasePoolMax),
        // The Ops construct applies migrations once per deployment, before the new code starts.
        DATABASE_MIGRATE_ON_START: 'false',
        // A finalize call hashes uploaded bytes for a quarter of the timeout, leaving the rest for
        // joining parts, validating the content and publishing it.
        UPLOAD_VERIFY_SECONDS: String(Math.max(1, Math.floor(config.web.timeoutSeconds / 4))),
        // Validating a data set counts tokens in the request at about 160 KiB/s (measured on a loaded
        // 2-core machine). The cap lets validation use half the timeout, and larger files are rejected.
        DATASET_MAX_BYTES: String(datasetBytesFor(config.web.timeoutSeconds)),
        DATASET_DERIVE_MAX_BYTES: String(Math.min(2 * 1024 * 1024, datasetBytesFor(config.web.timeoutSeconds))),
      },
    });
    web.serverFunction.node.addDependency(ops.migrations);
    database.secret.grantRead(web.serverFunction);
    appSecret.grantRead(web.serverFunction);
    if (web.securityGroup) database.allowFrom(web.securityGroup);
    web.serverFunction.addToRolePolicy(new iam.PolicyStatement({
      actions: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
      resources: [`arn:${Aws.PARTITION}:s3:::${bucketName}/*`],
    }));
    web.serverFunction.addToRolePolicy(new iam.PolicyStatement({
      // HeadBucket (the health check) needs s3:ListBucket on the bucket itself.
      actions: ['s3:ListBucket'],
      resources: [`arn:${Aws.PARTITION}:s3:::${bucketName}`],
    }));

    const runners = new RunnerFleet(this, 'Runners', { config, vpc, appUrl: appOrigin });

    new CfnOutput(this, 'AppUrl', { value: appOrigin });
    new CfnOutput(this, 'DistributionDomainName', { value: web.distribution.distributionDomainName, description: `point ${config.domainName} here (CNAME) unless hostedZone is set` });
    new CfnOutput(this, 'ArtifactsBucketName', { value: artifacts.bucket.bucketName });
    new CfnOutput(this, 'RunnerImageRepository', { value: runners.repository.repositoryUri });
    new CfnOutput(this, 'RunnerTokenSecretArn', { value: runners.tokenSecret.secretArn });
    new CfnOutput(this, 'RunnerGroupName', { value: runners.group.autoScalingGroupName });
    new CfnOutput(this, 'OpsFunctionName', { value: ops.opsFunction.functionName });
  }
}

/** Returns the largest data set, in bytes, whose validation fits half of a request timeout. */
export function datasetBytesFor(timeoutSeconds: number): number {
  return Math.max(1024 * 1024, Math.floor((timeoutSeconds / 2) * 160 * 1024));
}
