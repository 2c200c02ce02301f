import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { loadStageConfig } from '../lib/config';
import { MarketplaceStack } from '../lib/stack';

// Usage (from infra/): npx cdk synth -c stage=dev [-c openNextDir=…] [-c opsDir=…]
// Without the CDK CLI (no AWS credentials needed): STAGE=dev npm run infra:synth
const app = new App();
const repoRoot = path.resolve(import.meta.dirname, '..', '..');
const stage = app.node.tryGetContext('stage') ?? process.env.STAGE;
if (!stage) throw new Error('no stage given: pass -c stage=dev (or staging, prod, or another file in infra/stages)');

const config = loadStageConfig(stage, path.join(repoRoot, 'infra', 'stages'));
new MarketplaceStack(app, `adapters-${config.stage}`, {
  config,
  env: { account: config.account ?? process.env.CDK_DEFAULT_ACCOUNT, region: config.region },
  openNextDir: path.resolve(app.node.tryGetContext('openNextDir') ?? path.join(repoRoot, '.open-next')),
  opsDir: path.resolve(app.node.tryGetContext('opsDir') ?? path.join(repoRoot, '.infra-build', 'ops')),
  tags: { project: 'adapter-marketplace', stage: config.stage },
});
app.synth();
