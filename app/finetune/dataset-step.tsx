'use client';

import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { useTRPC, useTRPCClient } from '@/lib/trpc-react';
import { describeBrowserFile, uploadParts } from '@/lib/upload';
import { finalizeUpload } from '@/lib/upload-protocol';
import { estimateEpochSeconds, REFERENCE_PARAMETERS } from '@/server/formats/throughput';
import { DatasetLineage } from './dataset-lineage';

interface Problem { line: number | null; message: string }
export interface Report {
  valid: boolean;
  fileType?: string;
  format: string | null;
  examples: number;
  errorCount: number;
  errors: Problem[];
  lineWarningCount?: number;
  lineWarnings?: Problem[];
  warnings: string[];
  duplicates: number;
  overLong?: number;
  maxSeqLength?: number | null;
  tokens: Record<string, { p50: number; p95: number; max: number; total: number }> | null;
  trainingTokens?: number | null;
}
export interface ChosenDataset { id: number; report: Report; lineage: unknown }

type Role = 'prompt' | 'completion' | 'system' | 'text';
const GUESSES: Record<Role, RegExp> = {
  prompt: /^(prompt|question|instruction|input|query)$/i,
  completion: /^(completion|answer|response|output|target)$/i,
  system: /^(system|system_prompt)$/i,
  text: /^(text|document|content)$/i,
};

const CLEANING_STEPS = [
  ['normalizeUnicode', 'Unicode NFC normalisation'],
  ['normalizeWhitespace', 'Whitespace normalisation (line ends, trailing spaces, blank-line runs, zero-width characters)'],
  ['dropEmpty', 'Drop empty examples'],
  ['dropOverLong', 'Drop examples longer than the maximum sequence length'],
  ['dedupeExact', 'Remove exact duplicates'],
  ['dedupeNear', 'Remove near duplicates (word 3-gram Jaccard similarity 0.8 or more, found with MinHash)'],
  ['maskEmails', 'Mask email addresses as [EMAIL]'],
  ['maskPhones', 'Mask phone numbers as [PHONE]'],
  ['maskIds', 'Mask ID-like numbers (6 or more digits) as [ID]'],
] as const;
type CleaningKey = (typeof CLEANING_STEPS)[number][0];

/** Reads the header row of a CSV or TSV file (RFC 4180 quoting) from its first bytes. */
function headerRow(text: string, delimiter: string): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (quoted) {
      if (char === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (char === '"') quoted = false;
      else field += char;
    } else if (char === '"' && field === '') quoted = true;
    else if (char === delimiter) { fields.push(field.trim()); field = ''; }
    else if (char === '\n' || char === '\r') break;
    else field += char;
  }
  fields.push(field.trim());
  return fields.map((name) => name.replace(/^\uFEFF/, ''));
}

function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/**
 * The data step of the fine-tune wizard: upload (JSONL, or CSV/TSV with a column mapping),
 * the validation report and statistics, then optional cleaning, validation split and
 * general-data mixing, which create a new data set version.
 */
export function DatasetStep({ baseModelId, parameterCount, maxSeqLength, onChange }: {
  baseModelId: string; parameterCount: number | null; maxSeqLength: number; onChange: (dataset: ChosenDataset | null, name: string | null) => void;
}) {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const hardware = useQuery(trpc.datasets.hardware.queryOptions());
  const [file, setFile] = useState<File | null>(null);
  const [columns, setColumns] = useState<string[] | null>(null);
  const [mapping, setMapping] = useState<Partial<Record<Role, string>>>({});
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [dataset, setDataset] = useState<ChosenDataset | null>(null);
  const [cleaning, setCleaning] = useState<Record<CleaningKey, boolean>>({
    normalizeUnicode: true, normalizeWhitespace: true, dropEmpty: true, dropOverLong: false, dedupeExact: true, dedupeNear: false,
    maskEmails: false, maskPhones: false, maskIds: false,
  });
  const [validationPercent, setValidationPercent] = useState(0);
  const [mixPercent, setMixPercent] = useState(0);
  const [mixSource, setMixSource] = useState('self-instruct-seed');
  const [seed, setSeed] = useState(42);
  const [deriving, setDeriving] = useState(false);
  const datasetsList = useQuery(trpc.datasets.list.queryOptions());

  const choose = (next: ChosenDataset | null, name: string | null) => {
    setDataset(next);
    onChange(next, name);
  };

  async function pick(chosen: File) {
    setError(null);
    choose(null, null);
    setFile(chosen);
    setColumns(null);
    if (/\.(csv|tsv)$/i.test(chosen.name)) {
      const head = await chosen.slice(0, 64 * 1024).text();
      const found = headerRow(head, /\.tsv$/i.test(chosen.name) ? '\t' : ',');
      setColumns(found);
      const guessed: Partial<Record<Role, string>> = {};
      for (const role of ['prompt', 'completion', 'system'] as Role[]) {
        const match = found.find((name) => GUESSES[role].test(name));
        if (match) guessed[role] = match;
      }
      if (!guessed.prompt || !guessed.completion) {
        const text = found.find((name) => GUESSES.text.test(name));
        if (text) { delete guessed.prompt; delete guessed.completion; delete guessed.system; guessed.text = text; }
      }
      setMapping(guessed);
      return;
    }
    await upload(chosen, undefined);
  }

  async function upload(chosen: File, chosenMapping: Partial<Record<Role, string>> | undefined) {
    setError(null);
    try {
      const described = await describeBrowserFile(chosen, chosen.name.replace(/[^A-Za-z0-9._-]/g, '_'));
      const begun = await client.datasets.beginUpload.mutate({ file: described });
      setProgress(0);
      await uploadParts(chosen, begun.files[0]!, (done, total) => setProgress(total === 0 ? 1 : done / total));
      const name = chosen.name.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9._-]/g, '-');
      // A large file takes several calls while the server checks its sha256; the bar shows that check.
      const created = await finalizeUpload(
        () => client.datasets.create.mutate({ uploadId: begun.uploadId, name, baseModelId, mapping: chosenMapping, maxSeqLength }),
        (done, total) => setProgress(total === 0 ? 1 : done / total),
      );
      setProgress(null);
      choose({ id: created.datasetVersionId, report: created.report as Report, lineage: created.lineage }, name);
    } catch (caught) {
      setProgress(null);
      setError((caught as Error).message);
    }
  }

  async function derive() {
    if (!dataset) return;
    setError(null);
    setDeriving(true);
    try {
      const derived = await client.datasets.derive.mutate({
        sourceVersionId: dataset.id, baseModelId, maxSeqLength, cleaning,
        split: validationPercent > 0 ? { validationFraction: validationPercent / 100, seed } : null,
        mix: mixPercent > 0 ? { source: mixSource === 'self-instruct-seed' ? 'self-instruct-seed' : { datasetVersionId: Number(mixSource) }, ratio: mixPercent / 100, seed } : null,
      });
      choose({ id: derived.datasetVersionId, report: derived.report as Report, lineage: derived.lineage }, null);
    } catch (caught) {
      setError((caught as Error).message);
    } finally {
      setDeriving(false);
    }
  }

  const report = dataset?.report;
  const listed = (problems: Problem[], className: string) => (
    <ul>{problems.map((p, i) => <li key={`${p.line}-${i}`} className={className}>{p.line === null ? '' : `line ${p.line}: `}{p.message}</li>)}</ul>
  );

  return (
    <>
      <p className="muted">
        A JSONL file with one <code>{'{"prompt": …, "completion": …}'}</code>, <code>{'{"messages": [{"role": …, "content": …}]}'}</code> or{' '}
        <code>{'{"text": …}'}</code> object per line, or a CSV/TSV file with a header row.
      </p>
      <input type="file" accept=".jsonl,.csv,.tsv" aria-label="Data set file" onChange={(e) => e.target.files?.[0] && pick(e.target.files[0])} />
      {columns && file && (
        <div data-testid="column-mapping">
          <p>Columns of {file.name}: choose the prompt and completion columns (and optionally a system column), or a text column alone.</p>
          <div className="row">
            {(['prompt', 'completion', 'system', 'text'] as Role[]).map((role) => (
              <label key={role}>{role}<br />
                <select aria-label={`${role} column`} value={mapping[role] ?? ''} onChange={(e) => setMapping({ ...mapping, [role]: e.target.value || undefined })}>
                  <option value="">(none)</option>
                  {columns.map((column) => <option key={column} value={column}>{column}</option>)}
                </select>
              </label>
            ))}
          </div>
          <p><button onClick={() => upload(file, mapping)}>Upload and validate</button></p>
        </div>
      )}
      {progress !== null && <progress value={progress} max={1} />}
      {error && <p className="error">{error}</p>}

      {report && dataset && (
        <div data-testid="validation-report">
          <h2>Validation report</h2>
          <p className={report.valid ? 'state-succeeded' : 'state-failed'}>
            {report.valid ? `Valid: ${report.examples} examples (${report.format})` : `Rejected: ${report.errorCount} ${report.errorCount === 1 ? 'problem' : 'problems'}`}
          </p>
          {report.errors.length > 0 && listed(report.errors, 'error')}
          {report.errorCount > report.errors.length && <p className="muted">…and {report.errorCount - report.errors.length} more.</p>}
          {report.warnings.map((w) => <p key={w} className="muted">{w}</p>)}
          {(report.lineWarnings?.length ?? 0) > 0 && (
            <details><summary>{report.lineWarningCount} lines with warnings</summary>{listed(report.lineWarnings!, 'muted')}</details>
          )}
          <DatasetLineage lineage={dataset.lineage} />

          {report.tokens && (
            <div data-testid="dataset-statistics">
              <h3>Statistics</h3>
              <p>{report.examples} examples · {report.duplicates} duplicates · {report.overLong ?? 0} longer than {report.maxSeqLength ?? maxSeqLength} tokens</p>
              <table>
                <thead><tr><th>Tokens per example</th><th>p50</th><th>p95</th><th>max</th><th>total</th></tr></thead>
                <tbody>{Object.entries(report.tokens).map(([field, s]) => <tr key={field}><td>{field}</td><td>{s.p50}</td><td>{s.p95}</td><td>{s.max}</td><td>{s.total}</td></tr>)}</tbody>
              </table>
              {report.trainingTokens != null && (
                <>
                  <p>Training tokens per epoch: {report.trainingTokens.toLocaleString('en-US')} (each example cut at {report.maxSeqLength ?? maxSeqLength} tokens; &ldquo;total&rdquo; includes the chat template).</p>
                  <table>
                    <thead><tr><th>Hardware</th><th>Estimated time per epoch</th><th>Basis</th></tr></thead>
                    <tbody>{hardware.data?.map((h) => (
                      <tr key={h.id}>
                        <td>{h.label}</td>
                        <td>{formatDuration(estimateEpochSeconds(report.trainingTokens!, h, parameterCount ?? REFERENCE_PARAMETERS))}</td>
                        <td className="muted">{h.tokensPerSecond.toLocaleString('en-US')} tokens/s for a 135M-parameter model, scaled by parameter count; {h.basis}</td>
                      </tr>
                    ))}</tbody>
                  </table>
                  <p className="muted">Estimates only: speed depends on batch size, sequence length and the machine.</p>
                </>
              )}
            </div>
          )}

          {report.valid && (
            <div data-testid="cleaning-options">
              <h3>Cleaning, split and general data (optional)</h3>
              <p className="muted">Creates a new version of this data set; the report above then shows that version, with what each step removed or changed.</p>
              {CLEANING_STEPS.map(([key, label]) => (
                <label key={key} style={{ display: 'block' }}>
                  <input type="checkbox" checked={cleaning[key]} onChange={(e) => setCleaning({ ...cleaning, [key]: e.target.checked })} /> {label}
                </label>
              ))}
              <div className="row">
                <label>Validation split (%)<br /><input aria-label="Validation split percent" type="number" min={0} max={50} value={validationPercent} onChange={(e) => setValidationPercent(Number(e.target.value))} style={{ width: 80 }} /></label>
                <label>General data mixed in: {mixPercent}%<br />
                  <input aria-label="General data percent" type="range" min={0} max={50} step={5} value={mixPercent} onChange={(e) => setMixPercent(Number(e.target.value))} /></label>
                <label>General data source<br />
                  <select aria-label="General data source" value={mixSource} onChange={(e) => setMixSource(e.target.value)}>
                    <option value="self-instruct-seed">Self-Instruct seed tasks (175, Apache-2.0, bundled)</option>
                    {datasetsList.data?.filter((d) => d.valid && d.id !== dataset.id).map((d) => <option key={d.id} value={String(d.id)}>{d.name} v{d.version}</option>)}
                  </select></label>
                <label>Seed<br /><input aria-label="Seed" type="number" min={0} value={seed} onChange={(e) => setSeed(Number(e.target.value))} style={{ width: 80 }} /></label>
              </div>
              <p className="muted">10-30% general instruction data helps the adapter keep general skills; the share is of the final training set.</p>
              <p><button className="secondary" disabled={deriving} onClick={derive}>{deriving ? 'Creating…' : 'Create cleaned version'}</button></p>
            </div>
          )}
        </div>
      )}
    </>
  );
}
