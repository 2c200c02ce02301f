import path from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as route53 from 'aws-cdk-lib/aws-route53';
import * as targets from 'aws-cdk-lib/aws-route53-targets';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';
import type { StageConfig } from './config';

// Prefix of the Next.js incremental cache (prerendered pages) in the assets bucket.
const CACHE_PREFIX = '_cache';

export interface WebProps {
  config: StageConfig;
  // Output folder of the OpenNext build (`npm run build:lambda`, .open-next).
  openNextDir: string;
  // App settings that are not secrets; secrets arrive as *_SECRET_ARN names.
  environment: Record<string, string>;
  // Set when the database is reachable only from inside the VPC.
  vpc?: ec2.IVpc;
}

/**
 * The Next.js app on Lambda behind CloudFront, from an OpenNext build. The server function
 * handles every request except the hashed static files, which CloudFront serves from S3.
 */
export class Web extends Construct {
  readonly serverFunction: lambda.Function;
  readonly distribution: cloudfront.Distribution;
  readonly securityGroup?: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: WebProps) {
    super(scope, id);
    const { config } = props;

    const assets = new s3.Bucket(this, 'Assets', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      // Rebuilt from the OpenNext output on every deploy, so nothing here needs keeping.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });

    if (props.vpc) {
      this.securityGroup = new ec2.SecurityGroup(this, 'ServerSecurityGroup', { vpc: props.vpc, description: 'Next.js server function', allowAllOutbound: true });
    }

    const logGroup = new logs.LogGroup(this, 'ServerLogs', { retention: config.web.logRetentionDays as logs.RetentionDays, removalPolicy: RemovalPolicy.DESTROY });
    this.serverFunction = new lambda.Function(this, 'Server', {
      code: lambda.Code.fromAsset(path.join(props.openNextDir, 'server-functions', 'default')),
      handler: 'index.handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      // The bundle carries native modules (argon2) built for linux-x64.
      architecture: lambda.Architecture.X86_64,
      memorySize: config.web.memoryMb,
      timeout: Duration.seconds(config.web.timeoutSeconds),
      reservedConcurrentExecutions: config.web.reservedConcurrency,
      logGroup,
      environment: {
        ...props.environment,
        CACHE_BUCKET_NAME: assets.bucketName,
        CACHE_BUCKET_KEY_PREFIX: CACHE_PREFIX,
        CACHE_BUCKET_REGION: config.region,
      },
      ...(props.vpc ? { vpc: props.vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED }, securityGroups: [this.securityGroup!] } : {}),
    });
    assets.grantReadWrite(this.serverFunction, `${CACHE_PREFIX}/*`);

    // NOTE: the function URL takes unauthenticated calls. CloudFront's origin access control for
    // Lambda would require browsers to sign POST bodies (x-amz-content-sha256), which tRPC
    // mutations do not, so the URL is reachable without CloudFront's headers and caching.
    const functionUrl = this.serverFunction.addFunctionUrl({ authType: lambda.FunctionUrlAuthType.NONE, invokeMode: lambda.InvokeMode.RESPONSE_STREAM });

    const staticOrigin = origins.S3BucketOrigin.withOriginAccessControl(assets);
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: `adapter marketplace (${config.stage})`,
      domainNames: [config.domainName],
      certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', config.certificateArn),
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      minimumProtocolVersion: cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
      defaultBehavior: {
        origin: new origins.FunctionUrlOrigin(functionUrl, { readTimeout: Duration.seconds(config.web.timeoutSeconds) }),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        allowedMethods: cloudfront.AllowedMethods.ALLOW_ALL,
        // Pages and API responses depend on the session, so CloudFront never caches them.
        cachePolicy: cloudfront.CachePolicy.CACHING_DISABLED,
        // The function URL rejects requests whose Host is not its own.
        originRequestPolicy: cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
        compress: true,
      },
      additionalBehaviors: {
        '_next/static/*': {
          origin: staticOrigin,
          viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
          cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
          compress: true,
        },
      },
    });

    // Static files first, so that no page of the new build references a file not yet uploaded.
    new s3deploy.BucketDeployment(this, 'StaticFiles', {
      destinationBucket: assets,
      sources: [s3deploy.Source.asset(path.join(props.openNextDir, 'assets'))],
      // Old hashed files stay for pages still open in browsers.
      prune: false,
      cacheControl: [s3deploy.CacheControl.fromString('public, max-age=31536000, immutable')],
      memoryLimit: 1024,
    });
    new s3deploy.BucketDeployment(this, 'PrerenderedPages', {
      destinationBucket: assets,
      destinationKeyPrefix: `${CACHE_PREFIX}/`,
      sources: [s3deploy.Source.asset(path.join(props.openNextDir, 'cache'))],
      prune: false,
      memoryLimit: 1024,
    });

    if (config.hostedZone) {
      const zone = route53.HostedZone.fromHostedZoneAttributes(this, 'Zone', { hostedZoneId: config.hostedZone.id, zoneName: config.hostedZone.name });
      new route53.ARecord(this, 'Alias', { zone, recordName: config.domainName, target: route53.RecordTarget.fromAlias(new targets.CloudFrontTarget(this.distribution)) });
    }
  }
}
