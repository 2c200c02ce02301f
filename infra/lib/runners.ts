import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cloudwatchActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { StageConfig } from './config';
import { METRICS_NAMESPACE, QUEUE_METRICS } from './names';

// AWS Deep Learning Base AMI (NVIDIA driver, Docker and the NVIDIA container toolkit), resolved
// at deploy time. NOTE: path taken from the DLAMI release notes; not resolved from here.
export const GPU_AMI_PARAMETER = '/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id';

export interface RunnerFleetProps {
  config: StageConfig;
  vpc: ec2.IVpc;
  // Public URL of the app, which runners call for jobs.
  appUrl: string;
}

/**
 * GPU instances that each run one runner container (infra/runner/Dockerfile). The group grows
 * while jobs wait in the queue and shrinks to minInstances once no job is queued or running.
 * Runners need no inbound traffic: they call the app and S3 over HTTPS.
 */
export class RunnerFleet extends Construct {
  readonly group: autoscaling.AutoScalingGroup;
  readonly repository: ecr.Repository;
  // Holds the runner token (amr_…). Deployed with a random placeholder; replace it after the
  // first deploy with a token from `npm run cli -- runner-token NAME`.
  readonly tokenSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: RunnerFleetProps) {
    super(scope, id);
    const { config } = props;
    const runners = config.runners;
    const region = Stack.of(this).region;

    this.repository = new ecr.Repository(this, 'Images', {
      imageScanOnPush: true,
      lifecycleRules: [{ description: 'keep the 20 newest images', maxImageCount: 20 }],
      removalPolicy: config.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      emptyOnDelete: !config.retainData,
    });
    this.tokenSecret = new secretsmanager.Secret(this, 'Token', {
      secretName: `adapters/${config.stage}/runner-token`,
      description: 'Runner token (amr_…) the GPU runners use; replace the generated placeholder after the first deploy',
      generateSecretString: { passwordLength: 40, excludePunctuation: true },
    });

    const role = new iam.Role(this, 'InstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      // Shell access through Session Manager instead of SSH keys and an open port.
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    this.repository.grantPull(role);
    this.tokenSecret.grantRead(role);

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', { vpc: props.vpc, description: 'GPU runners: no inbound traffic', allowAllOutbound: true });

    const image = `${this.repository.repositoryUri}:${runners.imageTag}`;
    // repositoryUri is a deploy-time token, so the registry host is built from its parts.
    const registry = `${Stack.of(this).account}.dkr.ecr.${region}.${Stack.of(this).urlSuffix}`;
    const userData = ec2.UserData.forLinux();
    userData.addCommands(
      'set -euo pipefail',
      `region=${region}`,
      'imds=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
      'instance_id=$(curl -sf -H "X-aws-ec2-metadata-token: $imds" http://169.254.169.254/latest/meta-data/instance-id)',
      'install -d -m 700 /etc/adapters-runner /var/lib/runner',
      // The token goes into a root-only env file, not onto a command line that `ps` shows.
      `token=$(aws secretsmanager get-secret-value --region "$region" --secret-id ${this.tokenSecret.secretArn} --query SecretString --output text)`,
      `printf 'APP_URL=%s\\nRUNNER_TOKEN=%s\\nRUNNER_NAME=%s\\n' '${props.appUrl}' "$token" "$instance_id" > /etc/adapters-runner/env`,
      'chmod 600 /etc/adapters-runner/env',
      `aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin ${registry}`,
      `docker pull ${image}`,
      // A runner stops its worker and reports on SIGTERM; docker waits 10 minutes before SIGKILL.
      `docker run -d --name runner --restart unless-stopped --gpus all --stop-timeout 600 --env-file /etc/adapters-runner/env -v /var/lib/runner:/var/lib/runner ${image}`,
    );

    const launchTemplate = new ec2.LaunchTemplate(this, 'LaunchTemplate', {
      machineImage: ec2.MachineImage.fromSsmParameter(GPU_AMI_PARAMETER, { os: ec2.OperatingSystemType.LINUX }),
      role,
      securityGroup,
      userData,
      requireImdsv2: true,
      associatePublicIpAddress: true,
      blockDevices: [{ deviceName: '/dev/sda1', volume: ec2.BlockDeviceVolume.ebs(runners.rootVolumeGb, { volumeType: ec2.EbsDeviceVolumeType.GP3, encrypted: true }) }],
    });

    this.group = new autoscaling.AutoScalingGroup(this, 'Group', {
      vpc: props.vpc,
      // Public subnets with public addresses: runners reach the app and S3 without a NAT gateway.
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      minCapacity: runners.minInstances,
      maxCapacity: runners.maxInstances,
      mixedInstancesPolicy: {
        launchTemplate,
        launchTemplateOverrides: runners.instanceTypes.map((instanceType) => ({ instanceType: new ec2.InstanceType(instanceType) })),
        instancesDistribution: runners.spot
          ? { onDemandPercentageAboveBaseCapacity: 0, spotAllocationStrategy: autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED }
          : { onDemandPercentageAboveBaseCapacity: 100, onDemandAllocationStrategy: autoscaling.OnDemandAllocationStrategy.PRIORITIZED },
      },
      // Booting, pulling the image and loading the base model take several minutes.
      defaultInstanceWarmup: Duration.minutes(10),
    });

    this.addQueueScaling(config);
  }

  private addQueueScaling(config: StageConfig): void {
    const interval = Duration.minutes(config.runners.queueMetricsIntervalMinutes);
    const metric = (name: string) => new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: name,
      dimensionsMap: { Stage: config.stage },
      statistic: cloudwatch.Stats.MAXIMUM,
      period: interval,
    });

    // Scale out by the number of waiting jobs. Instances still warming up count as capacity,
    // so a job that waits while its instance boots does not add another one.
    this.group.scaleOnMetric('ScaleOutOnQueuedJobs', {
      metric: metric(QUEUE_METRICS.queued),
      adjustmentType: autoscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      scalingSteps: [
        { upper: 0, change: 0 },
        { lower: 1, upper: 3, change: +1 },
        { lower: 3, upper: 8, change: +2 },
        { lower: 8, change: +4 },
      ],
      estimatedInstanceWarmup: Duration.minutes(10),
    });

    // Scale in only when every runner is idle: the group cannot tell busy instances from idle
    // ones, and terminating a busy one costs its job an attempt.
    // NOTE: while any job runs, idle instances keep running (and costing) until the backlog is empty.
    const scaleIn = new autoscaling.StepScalingAction(this, 'ScaleInWhenIdle', {
      autoScalingGroup: this.group,
      adjustmentType: autoscaling.AdjustmentType.EXACT_CAPACITY,
    });
    scaleIn.addAdjustment({ adjustment: config.runners.minInstances, upperBound: 0 });
    const idle = new cloudwatch.Alarm(this, 'IdleAlarm', {
      alarmDescription: `No job queued or running for ${config.runners.scaleInIdleMinutes} minutes: scale runners to ${config.runners.minInstances}`,
      metric: metric(QUEUE_METRICS.backlog),
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_OR_EQUAL_TO_THRESHOLD,
      threshold: 0,
      evaluationPeriods: Math.ceil(config.runners.scaleInIdleMinutes / config.runners.queueMetricsIntervalMinutes),
      // Without datapoints (the publisher failing) the fleet is left as it is.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    idle.addAlarmAction(new cloudwatchActions.AutoScalingAction(scaleIn));
  }
}
