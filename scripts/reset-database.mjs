// Drops and recreates the database named in a postgres:// URL, connecting to the server's
// `postgres` database to do it. Used for a clean test run.
import pg from 'pg';

const target = new URL(process.argv[2]);
const name = target.pathname.slice(1);
if (!/^[a-z0-9_]+$/.test(name)) throw new Error(`database name ${JSON.stringify(name)} must be lowercase letters, digits and underscores`);
const admin = new URL(target);
admin.pathname = '/postgres';
const client = new pg.Client({ connectionString: admin.toString() });
await client.connect();
await client.query(`drop database if exists ${name} with (force)`);
await client.query(`create database ${name}`);
await client.end();
