import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import type { StageConfig } from './config';
import { DELETED_OBJECT_TAG } from './names';

export interface ArtifactsBucketProps {
  config: StageConfig;
  // Physical bucket name, fixed in advance so the app's settings do not depend on the bucket resource.
  bucketName: string;
  // Origin of the app (https://domain), the only one allowed to PUT through presigned URLs from a browser.
  appOrigin: string;
}

/**
 * The private bucket for adapter files, data sets and job outputs. Clients reach it only
 * through presigned URLs that the app signs.
 */
export class ArtifactsBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: ArtifactsBucketProps) {
    super(scope, id);
    const { config } = props;

    this.bucket = new s3.Bucket(this, 'Bucket', {
      bucketName: props.bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      // Versions would keep every purged blob, so the app's purge would free nothing.
      versioned: false,
      removalPolicy: config.retainData ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
      autoDeleteObjects: !config.retainData,
      cors: [{
        // Browsers upload whole files and multipart parts with presigned PUTs and download with GET.
        allowedMethods: [s3.HttpMethods.PUT, s3.HttpMethods.GET, s3.HttpMethods.HEAD],
        allowedOrigins: [props.appOrigin],
        // lib/upload.ts sends only the body (and the browser its type); length and sha256 are in
        // the signed query string.
        allowedHeaders: ['content-type'],
        exposedHeaders: ['ETag'],
        maxAge: 3600,
      }],
      // No rule on blobs/upload/: a verified multipart object stays at that key for good.
      lifecycleRules: [
        {
          id: 'abort-incomplete-multipart-uploads',
          abortIncompleteMultipartUploadAfter: Duration.days(config.artifacts.abortIncompleteMultipartUploadDays),
        },
        {
          id: 'expire-deleted-objects',
          tagFilters: { [DELETED_OBJECT_TAG.key]: DELETED_OBJECT_TAG.value },
          expiration: Duration.days(config.artifacts.deletedObjectExpirationDays),
        },
      ],
    });
  }
}
