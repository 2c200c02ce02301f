'use client';

import { useMutation, useQuery } from '@tanstack/react-query';
import { useRouter } from 'next/navigation';
import { useEffect, useState } from 'react';
import { useTRPC, useTRPCClient } from '@/lib/trpc-react';
import { describeBrowserFile, uploadParts } from '@/lib/upload';
import { finalizeUpload } from '@/lib/upload-protocol';

interface Report {
  valid: boolean;
  format: string | null;
  examples: number;
  errorCount: number;
  errors: { line: number | null; message: string }[];
  warnings: string[];
  duplicates: number;
  tokens: Record<string, { p50: number; p95: number; max: number; total: number }> | null;
}

export default function FinetunePage() {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const router = useRouter();
  const me = useQuery(trpc.auth.me.queryOptions());
  const baseModels = useQuery(trpc.baseModels.list.queryOptions());
  const presets = useQuery(trpc.finetune.presets.queryOptions());

  const [baseModelId, setBaseModelId] = useState('');
  const [uploadProgress, setUploadProgress] = useState<number | null>(null);
  const [uploadError, setUploadError] = useState<string | null>(null);
  const [dataset, setDataset] = useState<{ id: number; report: Report } | null>(null);
  const [preset, setPreset] = useState('standard');
  const [form, setForm] = useState({ adapterName: '', domain: 'medical', rank: 16, alpha: 32, epochs: 1, learningRate: 0.0002, batchSize: 4, maxSeqLength: 512, maxSteps: '', evalLimit: '' });
  const create = useMutation(trpc.finetune.create.mutationOptions({ onSuccess: ({ jobId }) => router.push(`/jobs/${jobId}`) }));

  useEffect(() => {
    if (!baseModelId && baseModels.data?.[0]) setBaseModelId(baseModels.data[0].id);
  }, [baseModels.data, baseModelId]);

  if (me.data === null) return <p>Sign in to fine-tune: <a href="/signin?callbackUrl=/finetune">Sign in</a></p>;

  async function upload(file: File) {
    setUploadError(null);
    setDataset(null);
    try {
      const described = await describeBrowserFile(file, file.name.replace(/[^A-Za-z0-9._-]/g, '_'));
      const begun = await client.datasets.beginUpload.mutate({ file: described });
      setUploadProgress(0);
      await uploadParts(file, begun.files[0]!, (done, total) => setUploadProgress(total === 0 ? 1 : done / total));
      const name = file.name.replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9._-]/g, '-');
      // A large file takes several calls while the server checks its sha256; the bar shows that check.
      const created = await finalizeUpload(
        () => client.datasets.create.mutate({ uploadId: begun.uploadId, name, baseModelId }),
        (done, total) => setUploadProgress(total === 0 ? 1 : done / total),
      );
      setUploadProgress(null);
      setDataset({ id: created.datasetVersionId, report: created.report as Report });
      if (!form.adapterName) setForm((f) => ({ ...f, adapterName: `${name}-lora` }));
    } catch (error) {
      setUploadProgress(null);
      setUploadError((error as Error).message);
    }
  }

  const choosePreset = (key: string) => {
    setPreset(key);
    const chosen = presets.data?.[key as keyof typeof presets.data];
    if (chosen) setForm((f) => ({ ...f, rank: chosen.rank, alpha: chosen.alpha }));
  };

  const numberField = (key: keyof typeof form, label: string, step = 'any') => (
    <label>{label}<br /><input type="number" step={step} value={form[key]} onChange={(e) => setForm({ ...form, [key]: e.target.value })} style={{ width: 120 }} /></label>
  );

  return (
    <>
      <h1>Fine-tune a LoRA adapter</h1>
      <div className="card">
        <h2>1. Base model and data</h2>
        <p><label>Base model{' '}
          <select aria-label="Base model" value={baseModelId} onChange={(e) => setBaseModelId(e.target.value)}>
            {baseModels.data?.map((m) => <option key={m.id} value={m.id}>{m.displayName}</option>)}
          </select></label></p>
        <p className="muted">A JSONL file: one <code>{'{"prompt": …, "completion": …}'}</code> or <code>{'{"messages": [{"role": …, "content": …}]}'}</code> object per line.</p>
        <input type="file" accept=".jsonl" aria-label="Data set file" onChange={(e) => e.target.files?.[0] && upload(e.target.files[0])} />
        {uploadProgress !== null && <progress value={uploadProgress} max={1} />}
        {uploadError && <p className="error">{uploadError}</p>}
      </div>

      {dataset && (
        <div className="card" data-testid="validation-report">
          <h2>Validation report</h2>
          <p className={dataset.report.valid ? 'state-succeeded' : 'state-failed'}>
            {dataset.report.valid ? `Valid: ${dataset.report.examples} examples (${dataset.report.format})` : `Rejected: ${dataset.report.errorCount} ${dataset.report.errorCount === 1 ? 'problem' : 'problems'}`}
          </p>
          {dataset.report.errors.length > 0 && <ul>{dataset.report.errors.map((e) => <li key={`${e.line}-${e.message}`} className="error">{e.line === null ? '' : `line ${e.line}: `}{e.message}</li>)}</ul>}
          {dataset.report.errorCount > dataset.report.errors.length && <p className="muted">…and {dataset.report.errorCount - dataset.report.errors.length} more.</p>}
          {dataset.report.warnings.map((w) => <p key={w} className="muted">{w}</p>)}
          {dataset.report.tokens && (
            <table>
              <thead><tr><th>Tokens per example</th><th>p50</th><th>p95</th><th>max</th><th>total</th></tr></thead>
              <tbody>{Object.entries(dataset.report.tokens).map(([field, s]) => <tr key={field}><td>{field}</td><td>{s.p50}</td><td>{s.p95}</td><td>{s.max}</td><td>{s.total}</td></tr>)}</tbody>
            </table>
          )}
        </div>
      )}

      {dataset?.report.valid && (
        <div className="card">
          <h2>2. Training options</h2>
          <div className="row">
            {presets.data && Object.entries(presets.data).map(([key, p]) => (
              <label key={key} title={p.description}><input type="radio" name="preset" checked={preset === key} onChange={() => choosePreset(key)} /> {p.label}</label>
            ))}
          </div>
          <p className="muted">{presets.data?.[preset as keyof typeof presets.data]?.description} LoRA is applied to every linear layer.</p>
          <div className="row">
            <label>Adapter name<br /><input aria-label="Adapter name" value={form.adapterName} onChange={(e) => setForm({ ...form, adapterName: e.target.value })} /></label>
            <label>Domain<br /><select value={form.domain} onChange={(e) => setForm({ ...form, domain: e.target.value })}>
              {['medical', 'finance', 'industry', 'general'].map((d) => <option key={d}>{d}</option>)}</select></label>
            {numberField('rank', 'Rank', '1')}
            {numberField('alpha', 'Alpha')}
            {numberField('epochs', 'Epochs')}
            {numberField('learningRate', 'Learning rate')}
            {numberField('batchSize', 'Batch size', '1')}
            {numberField('maxSeqLength', 'Max sequence length (tokens)', '1')}
            {numberField('maxSteps', 'Max steps (optional)', '1')}
            {numberField('evalLimit', 'Evaluation items (empty: all)', '1')}
          </div>
          <p>
            <button disabled={create.isPending} onClick={() => create.mutate({
              datasetVersionId: dataset.id, baseModelId, adapterName: form.adapterName, domain: form.domain, description: `LoRA fine-tune on ${form.adapterName}`,
              evalLimit: form.evalLimit ? Number(form.evalLimit) : null,
              hyperparameters: {
                rank: Number(form.rank), alpha: Number(form.alpha), epochs: Number(form.epochs), learningRate: Number(form.learningRate),
                batchSize: Number(form.batchSize), maxSeqLength: Number(form.maxSeqLength), maxSteps: form.maxSteps ? Number(form.maxSteps) : null,
                dropout: 0.05, targetModules: 'all-linear', gradientAccumulation: 1, warmupRatio: 0.03, seed: 42,
              },
            })}>Start fine-tune</button>
          </p>
          {create.error && <p className="error">{create.error.message}</p>}
        </div>
      )}
    </>
  );
}
