import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { StageConfig } from './config';

export interface DatabaseProps {
  config: StageConfig;
  vpc: ec2.IVpc;
}

/**
 * The app's Postgres database: an Aurora Serverless v2 cluster in the VPC's isolated subnets,
 * or a Neon database outside AWS whose connection string is a secret created by hand.
 * Either way the functions receive only the secret's ARN (DATABASE_SECRET_ARN).
 */
export class Database extends Construct {
  readonly secret: secretsmanager.ISecret;
  // Set for Aurora: functions and runners that need the database join this group's rules.
  readonly cluster?: rds.DatabaseCluster;
  // Whether the functions must run inside the VPC to reach the database.
  readonly inVpc: boolean;

  constructor(scope: Construct, id: string, props: DatabaseProps) {
    super(scope, id);
    const { config } = props;
    const database = config.database;

    if (database.engine === 'neon') {
      this.secret = secretsmanager.Secret.fromSecretNameV2(this, 'NeonConnection', database.connectionSecretName);
      this.inVpc = false;
      return;
    }

    this.cluster = new rds.DatabaseCluster(this, 'Cluster', {
      engine: rds.DatabaseClusterEngine.auroraPostgres({ version: rds.AuroraPostgresEngineVersion.VER_16_8 }),
      // Aurora stores the generated password in Secrets Manager; the template holds only its ARN.
      credentials: rds.Credentials.fromGeneratedSecret('adapters', { secretName: `adapters/${config.stage}/database` }),
      defaultDatabaseName: 'adapters',
      writer: rds.ClusterInstance.serverlessV2('writer'),
      serverlessV2MinCapacity: database.minCapacityAcu,
      serverlessV2MaxCapacity: database.maxCapacityAcu,
      ...(database.minCapacityAcu === 0 ? { serverlessV2AutoPauseDuration: Duration.minutes(database.autoPauseMinutes) } : {}),
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED },
      storageEncrypted: true,
      backup: { retention: Duration.days(database.backupRetentionDays) },
      deletionProtection: config.retainData,
      removalPolicy: config.retainData ? RemovalPolicy.SNAPSHOT : RemovalPolicy.DESTROY,
    });
    this.secret = this.cluster.secret!;
    this.inVpc = true;
  }

  /** Lets `peer` open connections to the cluster; a no-op for Neon, which is reached over the internet. */
  allowFrom(peer: ec2.IConnectable): void {
    this.cluster?.connections.allowDefaultPortFrom(peer, 'app functions to Postgres');
  }
}
