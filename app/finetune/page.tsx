'use client';

import { useMutation, useQuery } from '@tanstack/react-query';
import { useRouter } from 'next/navigation';
import { useEffect, useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';
import { DatasetStep, type ChosenDataset } from './dataset-step';

export default function FinetunePage() {
  const trpc = useTRPC();
  const router = useRouter();
  const me = useQuery(trpc.auth.me.queryOptions());
  const baseModels = useQuery(trpc.baseModels.list.queryOptions());
  const presets = useQuery(trpc.finetune.presets.queryOptions());

  const [baseModelId, setBaseModelId] = useState('');
  const [dataset, setDataset] = useState<ChosenDataset | null>(null);
  const [preset, setPreset] = useState('standard');
  const [form, setForm] = useState({ adapterName: '', domain: 'medical', rank: 16, alpha: 32, epochs: 1, learningRate: 0.0002, batchSize: 4, maxSeqLength: 512, maxSteps: '', evalLimit: '' });
  const create = useMutation(trpc.finetune.create.mutationOptions({ onSuccess: ({ jobId }) => router.push(`/jobs/${jobId}`) }));

  useEffect(() => {
    if (!baseModelId && baseModels.data?.[0]) setBaseModelId(baseModels.data[0].id);
  }, [baseModels.data, baseModelId]);

  if (me.data === null) return <p>Sign in to fine-tune: <a href="/signin?callbackUrl=/finetune">Sign in</a></p>;

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
        <DatasetStep
          baseModelId={baseModelId}
          parameterCount={baseModels.data?.find((m) => m.id === baseModelId)?.parameterCount ?? null}
          maxSeqLength={Number(form.maxSeqLength) || 512}
          onChange={(chosen, name) => {
            setDataset(chosen);
            if (name && !form.adapterName) setForm((f) => ({ ...f, adapterName: `${name}-lora` }));
          }}
        />
      </div>

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
