import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createClient, fileSource, followJob, uploadFiles, type Client } from '@adapters/client';
import { finalizeUpload } from '../lib/upload-protocol';
import { pullArchive } from './archive';
import { announce, describeFile, describeFolder, describeFolderProblem } from './upload';

/**
 * The command line that started the CLI, as hints and help print it: bin/adapters.mjs
 * sets ADAPTERS_COMMAND (`adapters`, or `npx adapters` under npx), and npm sets
 * npm_lifecycle_event to `cli` under `npm run cli`.
 */
const COMMAND = process.env.ADAPTERS_COMMAND
  ?? (process.env.npm_lifecycle_event === 'cli' ? 'npm run cli --' : 'npx tsx cli/main.ts');

// Set by --json: machine-readable output only, so no progress bars even on a terminal.
let jsonOutput = false;

const HELP = `Usage: ${COMMAND} <command> [options]

Commands:
  login --email E --password P         store an API token for this app (in ~/.config/adapters/config.json)
  publish DIR --name NAME --base ID    publish a PEFT adapter folder as the next version of NAME
        [--description TEXT] [--domain DOMAIN] [--label 1.2.0] [--changelog TEXT]
        [--namespace TEAM]  (a team you are an admin of; your own namespace by default)
        [--private | --public]  (private: only members of the namespace see it; a new adapter is
        public by default and an existing one keeps its visibility)
        (an interrupted upload resumes when the same command runs again)
  visibility NAMESPACE/NAME public|private   make an adapter public or private (namespace admins)
  search [QUERY] [--base ID] [--domain D] [--sort relevance|recent|downloads|likes|score] [--limit N]
  pull NAMESPACE/NAME[@VERSION] [--out DIR]   download every file of a version and check each file's sha256
        [--archive FILE.tar]           download the version as one tar archive instead and list its files
  dataset FILE --name NAME --base ID  upload and validate a data set (.jsonl, .csv or .tsv)
        [--prompt-column C --completion-column C [--system-column C] | --text-column C]
        (CSV/TSV: header names of the columns) [--max-seq 512] (tokens; longer examples are listed)
  dataset-clean ID --base ID           derive a cleaned version of data set version ID
        [--clean all|LIST] LIST of unicode,whitespace,emails,phones,ids,empty,over-long,duplicates,near-duplicates
        [--max-seq 512] [--validation 0.1] (share split off for validation) [--seed 42]
        [--mix 0.2] (share of general instruction data) [--mix-source self-instruct-seed|DATASET_VERSION_ID]
  finetune create --dataset ID --base ID --name ADAPTER [--rank 16 --alpha 32 --epochs 1
        --lr 2e-4 --batch 4 --max-seq 512 --max-steps N --domain medical --eval-limit N]
        [--private | --public]  (visibility of the adapter the job publishes)
  finetune watch JOB_ID                follow a job until it ends
  finetune cancel JOB_ID
  finetune resume JOB_ID               continue a cancelled or failed fine-tune from its last checkpoint
  eval NAMESPACE/NAME[@VERSION] --task ID [--limit N]
  eval-suite NAMESPACE/NAME[@VERSION] --suite ID   queue one evaluation per task of the suite's latest version
  edge-export NAMESPACE/NAME[@VERSION] [--limit 8]   queue an ONNX edge export; --limit sets the task items its report scores
  leaderboard TASK_ID
  leaderboard --suite ID [--base ID]   rank versions by suite score, with gain and general-suite change
  yank NAMESPACE/NAME@VERSION --reason TEXT   hide a version from "latest" and listings
  deprecate NAMESPACE/NAME --message TEXT [--replacement NAMESPACE/NAME]
  delete NAMESPACE/NAME                 delete an adapter (restorable during the retention period)
  restore NAMESPACE/NAME               undo a delete
  rename NAMESPACE/NAME NEW_NAME [--to NAMESPACE]   rename or transfer; the old name redirects
  runner-token NAME                    (admin) create a runner token

Options: --url URL (default $ADAPTERS_URL or the stored one), --token TOKEN
(default $ADAPTERS_TOKEN or the stored one), --json for machine-readable output.`;

const configFile = path.join(process.env.XDG_CONFIG_HOME ?? path.join(os.homedir(), '.config'), 'adapters', 'config.json');

interface Stored { url?: string; token?: string }

async function readStored(): Promise<Stored> {
  try {
    return JSON.parse(await fs.readFile(configFile, 'utf8')) as Stored;
  } catch {
    return {};
  }
}

type SuiteBoard = Awaited<ReturnType<Client['evals']['suiteLeaderboard']['query']>>;

function printSuiteLeaderboard(board: SuiteBoard, print: (human: string, data: unknown) => void): void {
  const pct = (value: number) => `${(value * 100).toFixed(1)}%`;
  const points = (value: number | null) => (value === null ? '–' : `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}`);
  const lines = [
    `${board.suite.displayName} v${board.suite.version} on ${board.baseModelId ?? 'no base model scored yet'}`,
    `  base: ${board.base ? `${pct(board.base.score)} ± ${pct(board.base.stderr)}` : 'not scored'}`,
    ...board.entries.map((e) => `  #${e.rank} ${e.adapter}@${e.version}: ${pct(e.score)} ± ${pct(e.stderr)}, gain ${points(e.gain)}, general ${points(e.forgetting)}${e.contamination?.flagged ? ', contamination flagged' : ''}`),
    ...board.unranked.map((u) => `  not ranked ${u.adapter}@${u.version}: ${u.reason}`),
  ];
  print(lines.join('\n'), board);
}

function parseRef(ref: string | undefined): { namespace: string; name: string; version?: number } {
  const match = ref?.match(/^([^/@\s]+)\/([^/@\s]+)(?:@(\d+))?$/);
  if (!match) throw new Error(`adapter reference ${JSON.stringify(ref)} is invalid; write NAMESPACE/NAME or NAMESPACE/NAME@VERSION`);
  return { namespace: match[1]!, name: match[2]!, version: match[3] ? Number(match[3]) : undefined };
}

/** Draws a progress bar on stderr, only on a terminal and never with --json. */
function progressBar(label: string, done: number, total: number): void {
  if (!process.stderr.isTTY || jsonOutput) return;
  const width = 30;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  process.stderr.write(`\r${label.padEnd(28).slice(0, 28)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${((done / Math.max(1, total)) * 100).toFixed(0)}%`);
  if (done >= total) process.stderr.write('\n');
}

/**
 * Reports the server's sha256 check of an upload, which spans several finalize calls for large
 * files: a bar on a terminal, otherwise one line per call (each call takes seconds).
 */
function verifyProgress(quiet: boolean) {
  return (done: number, total: number) => {
    if (process.stderr.isTTY && !jsonOutput) progressBar('verifying upload', done, total);
    else if (!quiet) console.error(`verifying upload: ${done} of ${total} bytes`);
  };
}

/** Reads --private or --public; undefined when neither is given. */
function visibilityFlag(values: { private?: boolean; public?: boolean }): 'public' | 'private' | undefined {
  if (values.private && values.public) throw new Error('pass either --private or --public, not both');
  if (values.private) return 'private';
  return values.public ? 'public' : undefined;
}

/** Parses a flag as a positive integer, or rejects it naming the flag and the value. */
function positiveInteger(value: string, flag: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new Error(`${flag} ${JSON.stringify(value)} is not a positive integer`);
  return Number(value);
}

/** Parses a flag as a positive number (decimals and 2e-4 allowed). */
function positiveNumber(value: string, flag: string): number {
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) throw new Error(`${flag} ${JSON.stringify(value)} is not a positive number`);
  return number;
}

function need(value: string | undefined, flag: string): string {
  if (!value) throw new Error(`missing ${flag}; see \`${COMMAND} --help\``);
  return value;
}

async function watchJob(client: Client, jobId: string, json: boolean): Promise<string> {
  const job = await followJob(client, jobId, {
    onEvent: (update) => {
      if (json) return;
      // Off a terminal (a pipe, CI) there is no bar, so states and steps are printed as lines.
      if (update.kind === 'state' && !process.stderr.isTTY) console.error(`job ${jobId}: ${update.state}`);
      if (update.kind === 'progress') {
        // Evaluations count scored items and have no loss.
        const label = update.unit === 'items'
          ? `items ${update.step}/${update.totalSteps ?? '?'}`
          : `step ${update.step}/${update.totalSteps ?? '?'} loss ${update.loss?.toFixed(3) ?? '?'}`;
        if (process.stderr.isTTY) progressBar(label, update.step, update.totalSteps ?? update.step);
        else console.error(label);
      }
    },
  });
  if (json) console.log(JSON.stringify(job));
  else {
    console.log(`job ${jobId}: ${job.state}${job.error ? ` (${job.error.reason}: ${job.error.message})` : ''}`);
    if (job.result) console.log(`published ${job.result.namespace}/${job.result.name}@${job.result.version}`);
  }
  return job.state;
}

const CLEANING_FLAGS = {
  unicode: 'normalizeUnicode', whitespace: 'normalizeWhitespace', emails: 'maskEmails', phones: 'maskPhones', ids: 'maskIds',
  empty: 'dropEmpty', 'over-long': 'dropOverLong', duplicates: 'dedupeExact', 'near-duplicates': 'dedupeNear',
} as const;

/** Turns `--clean all` or a comma list such as `whitespace,duplicates` into cleaning options. */
function cleaningFlags(list: string) {
  const options = Object.fromEntries(Object.values(CLEANING_FLAGS).map((key) => [key, false])) as Record<(typeof CLEANING_FLAGS)[keyof typeof CLEANING_FLAGS], boolean>;
  const names = list === 'all' ? Object.keys(CLEANING_FLAGS) : list.split(',').map((name) => name.trim()).filter(Boolean);
  for (const name of names) {
    const key = CLEANING_FLAGS[name as keyof typeof CLEANING_FLAGS];
    if (!key) throw new Error(`--clean: unknown step ${JSON.stringify(name)}; use all or a comma list of ${Object.keys(CLEANING_FLAGS).join(', ')}`);
    options[key] = true;
  }
  return options;
}

function shareOf(value: string, flag: string): number {
  const share = Number(value);
  if (!Number.isFinite(share) || share < 0 || share > 0.5) throw new Error(`${flag} must be a share between 0 and 0.5 (0.2 for 20%), got ${JSON.stringify(value)}`);
  return share;
}

function nonNegativeInteger(value: string, flag: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0) throw new Error(`${flag} must be a whole number of 0 or more, got ${JSON.stringify(value)}`);
  return number;
}

interface ReportSummary {
  valid: boolean; examples: number; errorCount: number; errors: { line: number | null; message: string }[];
  lineWarningCount: number; lineWarnings: { line: number | null; message: string }[]; warnings: string[];
}

/** Describes a data set version's validation; `id` is what `finetune create --dataset` takes. */
function describeReport(created: { datasetVersionId: number; version: number }, name: string, report: ReportSummary): string {
  const versionId = created.datasetVersionId;
  const listed = (problems: { line: number | null; message: string }[]) => problems.map((e) => `  ${e.line === null ? '' : `line ${e.line}: `}${e.message}`).join('\n');
  if (!report.valid) {
    const more = report.errorCount > report.errors.length ? `\n  …and ${report.errorCount - report.errors.length} more` : '';
    return `data set rejected (${report.errorCount} ${report.errorCount === 1 ? 'problem' : 'problems'}):\n${listed(report.errors)}${more}`;
  }
  const warnings = report.warnings.length > 0 ? `\n${report.warnings.join('\n')}\n${listed(report.lineWarnings.slice(0, 10))}` : '';
  return `data set ${name} version ${created.version} (id ${versionId}): ${report.examples} examples; pass --dataset ${versionId} to \`${COMMAND} finetune create\`${warnings}`;
}

async function main(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' }, token: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
      email: { type: 'string' }, password: { type: 'string' }, name: { type: 'string' }, base: { type: 'string' }, description: { type: 'string' },
      domain: { type: 'string' }, out: { type: 'string' }, dataset: { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' },
      epochs: { type: 'string' }, lr: { type: 'string' }, batch: { type: 'string' }, 'max-seq': { type: 'string' }, 'max-steps': { type: 'string' },
      'eval-limit': { type: 'string' }, task: { type: 'string' }, suite: { type: 'string' }, limit: { type: 'string' }, reason: { type: 'string' },
      message: { type: 'string' }, replacement: { type: 'string' }, label: { type: 'string' }, changelog: { type: 'string' },
      sort: { type: 'string' }, to: { type: 'string' }, archive: { type: 'string' }, namespace: { type: 'string' },
      private: { type: 'boolean' }, public: { type: 'boolean' },
      'prompt-column': { type: 'string' }, 'completion-column': { type: 'string' }, 'text-column': { type: 'string' }, 'system-column': { type: 'string' },
      clean: { type: 'string' }, validation: { type: 'string' }, seed: { type: 'string' }, mix: { type: 'string' }, 'mix-source': { type: 'string' },
    },
  });
  jsonOutput = Boolean(values.json);
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    console.log(HELP);
    return;
  }
  const stored = await readStored();
  const url = values.url ?? process.env.ADAPTERS_URL ?? stored.url ?? 'http://127.0.0.1:3000';
  const token = values.token ?? process.env.ADAPTERS_TOKEN ?? stored.token;
  const client = createClient({ url, token });
  const print = (human: string, data: unknown) => console.log(values.json ? JSON.stringify(data) : human);

  switch (command) {
    case 'login': {
      const issued = await client.auth.issueToken.mutate({ email: need(values.email, '--email'), password: need(values.password, '--password'), name: `cli on ${os.hostname()}`, scopes: ['read', 'write', 'fine-tune', 'evaluate'], expiresInDays: null });
      await fs.mkdir(path.dirname(configFile), { recursive: true });
      await fs.writeFile(configFile, JSON.stringify({ url, token: issued.token }, null, 2), { mode: 0o600 });
      print(`logged in to ${url} as ${issued.namespace}; token ${issued.prefix}… stored in ${configFile}`, { namespace: issued.namespace, prefix: issued.prefix });
      return;
    }
    case 'publish': {
      const dir = need(rest[0], 'DIR');
      const name = need(values.name, '--name');
      const baseModelId = need(values.base, '--base');
      const visibility = visibilityFlag(values);
      const files = await describeFolder(dir);
      const problem = describeFolderProblem(dir, files);
      if (problem) throw new Error(problem);
      // The upload id is kept beside the files, so running the command again resumes an
      // interrupted upload instead of sending every part again.
      const stateFile = path.join(dir, '.adapters-upload.json');
      const fingerprint = files.map((f) => `${f.path}:${f.sha256}`).join(',');
      const previous = await fs.readFile(stateFile, 'utf8').then((text) => JSON.parse(text) as { uploadId: string; fingerprint: string }).catch(() => null);
      const resumeUploadId = previous?.fingerprint === fingerprint ? previous.uploadId : undefined;
      const sources = await Promise.all(files.map(async (file) => ({ ...(await fileSource(file.absolute, file.path)), described: announce(file) })));
      const { uploadId } = await uploadFiles(client, sources, {
        purpose: 'adapter',
        resumeUploadId,
        onBegin: async (id) => {
          if (id === resumeUploadId && !values.json) console.error(`resuming upload ${id}`);
          await fs.writeFile(stateFile, JSON.stringify({ uploadId: id, fingerprint }));
        },
        onProgress: (progress) => progressBar(progress.path, progress.fileBytes, progress.fileSize),
      });
      const published = await finalizeUpload(() => client.adapters.publish.mutate({
        uploadId, namespace: values.namespace, name, baseModelId, description: values.description, domain: values.domain ?? null, label: values.label ?? null, changelog: values.changelog ?? null,
        visibility,
      }), verifyProgress(Boolean(values.json)));
      await fs.rm(stateFile, { force: true });
      const privateNote = visibility === 'private' ? ' (private)' : '';
      print(`published ${published.namespace}/${published.name}@${published.version}${privateNote}${published.warnings.length ? `\nwarnings:\n  ${published.warnings.join('\n  ')}` : ''}`, published);
      return;
    }
    case 'pull': {
      const ref = parseRef(rest[0]);
      if (values.archive !== undefined) {
        if (values.out !== undefined) throw new Error('pass either --out DIR (file by file) or --archive FILE.tar, not both');
        const pulled = await pullArchive({ url, token, ...ref, file: values.archive, onProgress: (done, total) => progressBar(path.basename(values.archive!), done, total) });
        if (pulled.warning) console.error(`warning: ${pulled.warning}`);
        const listing = pulled.members.map((member) => `  ${member.name} (${member.size} bytes)`).join('\n');
        print(`pulled ${ref.namespace}/${ref.name}@${pulled.version} into ${pulled.file} (${pulled.bytes} bytes):\n${listing}`, pulled);
        return;
      }
      const page = await client.adapters.get.query(ref);
      const out = values.out ?? path.join(process.cwd(), `${ref.namespace}--${ref.name}`);
      await fs.mkdir(out, { recursive: true });
      for (const file of page.files) {
        const { url: fileUrl, sha256, warning } = await client.adapters.downloadUrl.mutate({ ...ref, version: page.version.version, path: file.path });
        if (warning && file === page.files[0]) console.error(`warning: ${warning}`);
        const response = await fetch(fileUrl);
        if (!response.ok) throw new Error(`download of ${file.path} failed with HTTP ${response.status}`);
        const bytes = Buffer.from(await response.arrayBuffer());
        const target = path.join(out, file.path);
        await fs.writeFile(target, bytes);
        const check = await describeFile(target, file.path);
        if (check.sha256 !== sha256) throw new Error(`${file.path} arrived corrupt: sha256 ${check.sha256}, expected ${sha256}`);
        progressBar(file.path, file.size, file.size);
      }
      print(`pulled ${ref.namespace}/${ref.name}@${page.version.version} into ${out}`, { out, version: page.version.version, files: page.files });
      return;
    }
    case 'dataset': {
      const file = await describeFile(need(rest[0], 'FILE.jsonl'), path.basename(need(rest[0], 'FILE.jsonl')));
      const begun = await uploadFiles(client, [{ ...(await fileSource(file.absolute, file.path)), described: announce(file) }], {
        purpose: 'dataset', onProgress: (progress) => progressBar(progress.path, progress.fileBytes, progress.fileSize),
      });
      const mapping = { prompt: values['prompt-column'], completion: values['completion-column'], text: values['text-column'], system: values['system-column'] };
      const hasMapping = Object.values(mapping).some((column) => column !== undefined);
      const input = {
        uploadId: begun.uploadId, name: need(values.name, '--name'), baseModelId: need(values.base, '--base'),
        mapping: hasMapping ? mapping : undefined, maxSeqLength: values['max-seq'] ? positiveInteger(values['max-seq'], '--max-seq') : undefined,
      };
      const created = await finalizeUpload(() => client.datasets.create.mutate(input), verifyProgress(Boolean(values.json)));
      print(describeReport(created, input.name, created.report), created);
      if (!created.report.valid) process.exitCode = 1;
      return;
    }
    case 'dataset-clean': {
      const sourceVersionId = positiveInteger(need(rest[0], 'ID'), 'ID');
      const seed = values.seed === undefined ? 42 : nonNegativeInteger(values.seed, '--seed');
      const validation = values.validation === undefined ? 0 : shareOf(values.validation, '--validation');
      const ratio = values.mix === undefined ? 0 : shareOf(values.mix, '--mix');
      const mixSource = values['mix-source'] ?? 'self-instruct-seed';
      const derived = await client.datasets.derive.mutate({
        sourceVersionId, baseModelId: need(values.base, '--base'),
        maxSeqLength: values['max-seq'] ? positiveInteger(values['max-seq'], '--max-seq') : 512,
        cleaning: cleaningFlags(values.clean ?? ''),
        split: validation > 0 ? { validationFraction: validation, seed } : null,
        mix: ratio > 0 ? { source: mixSource === 'self-instruct-seed' ? 'self-instruct-seed' : { datasetVersionId: positiveInteger(mixSource, '--mix-source') }, ratio, seed } : null,
      });
      const lineage = derived.lineage!;
      const counts = Object.entries(lineage.cleaning!.counts).filter(([, n]) => n > 0).map(([step, n]) => `  ${step}: ${n}`);
      const split = lineage.split ? [`  split: ${lineage.split.train} train, ${lineage.split.validation} validation (seed ${lineage.split.seed})`] : [];
      const mix = lineage.mix ? [`  mixed in ${lineage.mix.count} examples of ${lineage.mix.source} (ratio ${lineage.mix.ratio}, seed ${lineage.mix.seed})`] : [];
      print([`cleaning: ${lineage.cleaning!.before} -> ${lineage.cleaning!.after} examples`, ...counts, ...split, ...mix, describeReport(derived, lineage.derivedFrom?.name ?? `of version ${sourceVersionId}`, derived.report)].join('\n'), derived);
      if (!derived.report.valid) process.exitCode = 1;
      return;
    }
    case 'finetune': {
      const [action, jobId] = rest;
      if (action === 'create') {
        const int = (flag: string, fallback: number) => (values[flag as keyof typeof values] === undefined ? fallback : positiveInteger(String(values[flag as keyof typeof values]), `--${flag}`));
        const num = (flag: string, fallback: number) => (values[flag as keyof typeof values] === undefined ? fallback : positiveNumber(String(values[flag as keyof typeof values]), `--${flag}`));
        const created = await client.finetune.create.mutate({
          datasetVersionId: positiveInteger(need(values.dataset, '--dataset'), '--dataset'), baseModelId: need(values.base, '--base'), adapterName: need(values.name, '--name'),
          domain: values.domain ?? null, description: values.description ?? '',
          evalLimit: values['eval-limit'] === undefined ? null : positiveInteger(values['eval-limit'], '--eval-limit'),
          visibility: visibilityFlag(values),
          hyperparameters: {
            rank: int('rank', 16), alpha: num('alpha', 32), epochs: num('epochs', 1), learningRate: num('lr', 2e-4), batchSize: int('batch', 4),
            maxSeqLength: int('max-seq', 512), maxSteps: values['max-steps'] === undefined ? null : positiveInteger(values['max-steps'], '--max-steps'),
            dropout: 0.05, targetModules: 'all-linear', gradientAccumulation: 1, warmupRatio: 0.03, seed: 42,
          },
        });
        print(`job ${created.jobId} queued; follow it with \`${COMMAND} finetune watch ${created.jobId}\``, created);
        return;
      }
      if (action === 'watch') {
        const state = await watchJob(client, need(jobId, 'JOB_ID'), values.json);
        if (state !== 'succeeded') process.exitCode = 1;
        return;
      }
      if (action === 'cancel') {
        print(`cancel requested for job ${jobId}`, await client.finetune.cancel.mutate({ jobId: need(jobId, 'JOB_ID') }));
        return;
      }
      if (action === 'resume') {
        const resumed = await client.finetune.resume.mutate({ jobId: need(jobId, 'JOB_ID') });
        print(`job ${jobId} queued again; it continues after step ${resumed.checkpointStep}`, resumed);
        return;
      }
      throw new Error(`unknown finetune action ${JSON.stringify(action)}; use create, watch, cancel or resume`);
    }
    case 'eval': {
      const ref = parseRef(rest[0]);
      const created = await client.evals.request.mutate({ ...ref, taskId: need(values.task, '--task'), limit: values.limit === undefined ? null : positiveInteger(values.limit, '--limit') });
      print(`evaluation job ${created.jobId} queued; follow it with \`${COMMAND} finetune watch ${created.jobId}\``, created);
      return;
    }
    case 'eval-suite': {
      const ref = parseRef(rest[0]);
      const created = await client.evals.requestSuite.mutate({ ...ref, suiteId: need(values.suite, '--suite') });
      print(`suite ${created.suite.id} version ${created.suite.version}: ${created.jobIds.length} evaluation jobs queued (${created.jobIds.join(', ')})`, created);
      return;
    }
    case 'edge-export': {
      const ref = parseRef(rest[0]);
      const created = await client.edge.requestExport.mutate({ ...ref, ...(values.limit === undefined ? {} : { taskLimit: positiveInteger(values.limit, '--limit') }) });
      print(`edge export job ${created.jobId} queued; follow it with \`${COMMAND} finetune watch ${created.jobId}\``, created);
      return;
    }
    case 'leaderboard': {
      if (values.suite) {
        printSuiteLeaderboard(await client.evals.suiteLeaderboard.query({ suiteId: values.suite, baseModelId: values.base }), print);
        return;
      }
      const board = await client.evals.leaderboard.query({ taskId: need(rest[0], 'TASK_ID') });
      const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
      const b = board.task.baselines;
      const f1Baselines = b?.majority.macroF1 !== undefined && b.randomMacroF1 !== undefined ? `; macro-F1 random ${pct(b.randomMacroF1)}, always "${b.majority.answer}" ${pct(b.majority.macroF1)}` : '';
      const baselines = b ? [`  baselines: random ${pct(b.random)}, always "${b.majority.answer}" ${pct(b.majority.accuracy)}${f1Baselines}`] : [];
      const f1 = (value: number | null) => (value === null ? '' : `, macro-F1 ${pct(value)}`);
      const human = [`${board.task.displayName}`, ...baselines, ...(board.entries.length === 0 ? ['  no adapter scores yet'] : []),
        ...board.baseScores.map((s) => `  base ${s.baseModelId}: ${pct(s.accuracy)} ± ${pct(s.stderr)} (${s.correct}/${s.total})${f1(s.macroF1)}, ${s.numFewshot}-shot`),
        ...board.entries.map((e) => `  #${e.rank} ${e.adapter}@${e.version}: ${pct(e.accuracy)} ± ${pct(e.stderr)} (${e.correct}/${e.total})${f1(e.macroF1)}${e.difference === null ? '' : ` ${e.difference >= 0 ? '+' : ''}${(e.difference * 100).toFixed(1)} points vs base`}`)].join('\n');
      print(human, board);
      return;
    }
    case 'yank': {
      const ref = parseRef(rest[0]);
      if (ref.version === undefined) throw new Error('name the version to yank: NAMESPACE/NAME@VERSION');
      const yanked = await client.adapters.yank.mutate({ namespace: ref.namespace, name: ref.name, version: ref.version, reason: need(values.reason, '--reason') });
      print(`yanked ${ref.namespace}/${ref.name}@${yanked.version}`, yanked);
      return;
    }
    case 'deprecate': {
      const ref = parseRef(rest[0]);
      print(`deprecated ${ref.namespace}/${ref.name}`, await client.adapters.deprecate.mutate({ namespace: ref.namespace, name: ref.name, message: need(values.message, '--message'), replacedBy: values.replacement ?? null }));
      return;
    }
    case 'search': {
      const sorts = ['relevance', 'recent', 'downloads', 'likes', 'score'] as const;
      const sort = values.sort ?? 'relevance';
      if (!sorts.includes(sort as (typeof sorts)[number])) throw new Error(`--sort ${JSON.stringify(sort)} is not one of ${sorts.join(', ')}`);
      const found = await client.adapters.search.query({
        query: rest.join(' ') || undefined, baseModelId: values.base, domain: values.domain, sort: sort as (typeof sorts)[number],
        limit: values.limit === undefined ? 20 : Math.min(100, positiveInteger(values.limit, '--limit')),
      });
      const human = found.items.length === 0 ? 'no adapters match' : found.items.map((a) => `${a.namespace}/${a.name}@${a.latestVersion}  ${a.baseModelId}  rank ${a.rank ?? '?'}  ${a.downloads} downloads  ${a.likes} likes${a.bestScore === null ? '' : `  best ${(a.bestScore * 100).toFixed(1)}%`}`).join('\n');
      print(human, found);
      return;
    }
    case 'delete': {
      const ref = parseRef(rest[0]);
      const deleted = await client.adapters.delete.mutate({ namespace: ref.namespace, name: ref.name });
      print(`deleted ${ref.namespace}/${ref.name}; \`${COMMAND} restore ${ref.namespace}/${ref.name}\` brings it back until ${deleted.restorableUntil}`, deleted);
      return;
    }
    case 'restore': {
      const ref = parseRef(rest[0]);
      print(`restored ${ref.namespace}/${ref.name}`, await client.adapters.restore.mutate({ namespace: ref.namespace, name: ref.name }));
      return;
    }
    case 'rename': {
      const ref = parseRef(rest[0]);
      const renamed = await client.adapters.rename.mutate({ namespace: ref.namespace, name: ref.name, newName: need(rest[1], 'NEW_NAME'), newNamespace: values.to });
      print(`renamed to ${renamed.namespace}/${renamed.name}; ${renamed.redirectsFrom} redirects to it`, renamed);
      return;
    }
    case 'visibility': {
      const ref = parseRef(rest[0]);
      const requested = rest[1];
      if (requested !== 'public' && requested !== 'private') {
        throw new Error(`visibility ${JSON.stringify(requested ?? '')} is invalid; write \`${COMMAND} visibility ${rest[0]} public\` or \`… private\``);
      }
      const changed = await client.adapters.setVisibility.mutate({ namespace: ref.namespace, name: ref.name, visibility: requested });
      print(`${changed.namespace}/${changed.name} is now ${changed.visibility}${changed.previous === changed.visibility ? ' (unchanged)' : ''}`, changed);
      return;
    }
    case 'runner-token': {
      const created = await client.runner.createToken.mutate({ name: need(rest[0], 'NAME') });
      print(created.token, created);
      return;
    }
    default:
      throw new Error(`unknown command ${JSON.stringify(command)}; see \`${COMMAND} --help\``);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  let message = error instanceof Error ? error.message : String(error);
  const code = (error as { code?: string }).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') message = `no such file or folder: ${(error as { path?: string }).path}`;
  if (message === 'fetch failed') message = 'could not reach the app; check --url (or ADAPTERS_URL) and that the app is running';
  if (/^sign in or pass an API token/.test(message)) message = `not logged in; run \`${COMMAND} login --email … --password …\` or pass --token`;
  console.error(`error: ${message}`);
  process.exit(1);
});
