import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * Settings that may come from AWS Secrets Manager instead of the environment, so that no
 * deployment template or function configuration contains them in plain text.
 *
 * - DATABASE_SECRET_ARN: a secret whose value is a postgres:// URL (Neon) or an RDS secret
 *   (JSON with host, port, username, password and dbname), as Aurora generates it.
 * - APP_SECRET_ARN: a JSON object of further settings; only APP_SECRET_KEYS are taken from it.
 */
export const APP_SECRET_KEYS = ['NEXTAUTH_SECRET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const;

interface RdsSecret {
  host: string;
  port?: number | string;
  username: string;
  password: string;
  dbname?: string;
}

/**
 * Turns a database secret's value into a connection URL. RDS secrets get sslmode=verify-full,
 * which needs the RDS certificate authorities in NODE_EXTRA_CA_CERTS.
 */
export function databaseUrlFromSecret(value: string, secretId: string): string {
  const trimmed = value.trim();
  if (/^postgres(ql)?:\/\//.test(trimmed)) return trimmed;
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch {
    throw new Error(`database secret ${secretId} is neither a postgres:// URL nor JSON`);
  }
  const secret = parsed as Partial<RdsSecret>;
  if (typeof secret.host !== 'string' || typeof secret.username !== 'string' || typeof secret.password !== 'string') {
    throw new Error(`database secret ${secretId} lacks host, username or password; expected an RDS secret or a postgres:// URL`);
  }
  const port = secret.port ?? 5432;
  const database = secret.dbname ?? 'postgres';
  return `postgres://${encodeURIComponent(secret.username)}:${encodeURIComponent(secret.password)}@${secret.host}:${port}/${encodeURIComponent(database)}?sslmode=verify-full`;
}

/** Picks APP_SECRET_KEYS from an app secret's JSON value; other keys are rejected as likely typos. */
export function appSettingsFromSecret(value: string, secretId: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new Error(`app secret ${secretId} is not a JSON object`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`app secret ${secretId} is not a JSON object`);
  const settings: Record<string, string> = {};
  for (const [key, setting] of Object.entries(parsed)) {
    if (!(APP_SECRET_KEYS as readonly string[]).includes(key)) {
      throw new Error(`app secret ${secretId} contains unknown key ${key}; allowed keys: ${APP_SECRET_KEYS.join(', ')}`);
    }
    if (typeof setting !== 'string') throw new Error(`app secret ${secretId}: ${key} must be a string`);
    settings[key] = setting;
  }
  return settings;
}

/**
 * Reads the secrets named by DATABASE_SECRET_ARN and APP_SECRET_ARN and writes their settings
 * into `env`. Does nothing when neither is set. Returns the names of the settings it wrote.
 */
export async function loadCloudSecrets(env: Record<string, string | undefined> = process.env, client?: SecretsManagerClient): Promise<string[]> {
  const databaseSecretId = env.DATABASE_SECRET_ARN;
  const appSecretId = env.APP_SECRET_ARN;
  if (!databaseSecretId && !appSecretId) return [];
  if (databaseSecretId && env.DATABASE_URL) throw new Error('set DATABASE_URL or DATABASE_SECRET_ARN, not both');

  const secrets = client ?? new SecretsManagerClient({});
  const read = async (secretId: string) => {
    const out = await secrets.send(new GetSecretValueCommand({ SecretId: secretId }));
    if (out.SecretString === undefined) throw new Error(`secret ${secretId} has no string value`);
    return out.SecretString;
  };

  const written: string[] = [];
  if (databaseSecretId) {
    env.DATABASE_URL = databaseUrlFromSecret(await read(databaseSecretId), databaseSecretId);
    written.push('DATABASE_URL');
  }
  if (appSecretId) {
    for (const [key, value] of Object.entries(appSettingsFromSecret(await read(appSecretId), appSecretId))) {
      env[key] = value;
      written.push(key);
    }
  }
  return written;
}
