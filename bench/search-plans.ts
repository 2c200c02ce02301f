/**
 * EXPLAIN (ANALYZE, BUFFERS) of a few representative search requests, with the SQL that the
 * checked-out searchAdapters builds, on the database seeded by bench/search-100k.ts. Run it
 * before and after a change to the search query or its indexes to compare plans and times
 * without the load generator.
 *
 *   npx tsx bench/search-plans.ts --label before
 *
 * Needs only the Postgres server; each statement may run up to 5 minutes. Writes
 * bench/results/search-plans-<date>-<label>.json.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { captureSql } from './lib/search-load';
import { buildVocabulary, Rng } from './lib/search-data';
import { root } from './lib/stack';

const { values } = parseArgs({ options: { label: { type: 'string', default: 'current' }, seed: { type: 'string', default: '42' } } });
const DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/adapters_bench_search';

async function main() {
  const vocabulary = buildVocabulary(new Rng(Number(values.seed)));
  const inputs: { shape: string; input: Record<string, unknown> }[] = [
    { shape: 'text/relevance, common word', input: { query: 'clinical', limit: 24 } },
    { shape: 'text/relevance, rare word', input: { query: vocabulary.rareWords[200]!, limit: 24 } },
    { shape: 'text/relevance, name fragment', input: { query: 'medqa', limit: 24 } },
    { shape: 'filters/likes', input: { baseModelId: 'llama-3.2-1b-instruct', domain: 'code', sort: 'likes', limit: 24 } },
  ];
  const items = await captureSql(inputs.map(({ shape, input }) => ({ shape, input, path: '' })));
  const client = new pg.Client({ connectionString: DATABASE_URL, options: '-c statement_timeout=300s' });
  await client.connect();
  const results = [];
  try {
    for (const item of items) {
      console.error(`[search-plans] ${item.shape}: ${JSON.stringify(item.input)}`);
      const { rows } = await client.query<{ 'QUERY PLAN': string }>({ text: `explain (analyze, buffers) ${item.sql}`, values: item.params });
      const plan = rows.map((row) => row['QUERY PLAN']).join('\n');
      const executionMs = Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1]);
      console.error(`[search-plans]   ${executionMs} ms`);
      results.push({ shape: item.shape, input: item.input, executionMs, sql: item.sql, params: item.params, plan });
    }
  } finally {
    await client.end();
  }
  const record = { date: new Date().toISOString(), label: values.label, database: DATABASE_URL, results };
  const out = path.join(root, 'bench', 'results', `search-plans-${record.date.slice(0, 10)}-${values.label}.json`);
  await fs.writeFile(out, JSON.stringify(record, null, 2) + '\n');
  console.log(JSON.stringify(results.map(({ shape, executionMs }) => ({ shape, executionMs }))));
}

main().catch((error: unknown) => {
  console.error(`search-plans failed: ${(error as Error).message}`);
  process.exit(1);
});
