'use client';

import { useMutation, useQuery } from '@tanstack/react-query';
import { useRouter } from 'next/navigation';
import { useEffect, useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';
import type { Hyperparameters } from '@/server/contracts/runner';
import { DatasetStep, type ChosenDataset, type Report } from './dataset-step';

// Linear layers of a Llama-style decoder block; LoRA never targets lm_head.
const BLOCK_MODULES = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

const optionalNumber = (value: string | number) => (value === '' ? null : Number(value));

export default function FinetunePage() {
  const trpc = useTRPC();
  const router = useRouter();
  const me = useQuery(trpc.auth.me.queryOptions());
  const baseModels = useQuery(trpc.baseModels.list.queryOptions());
  const presets = useQuery(trpc.finetune.presets.queryOptions());

  const [baseModelId, setBaseModelId] = useState('');
  const [dataset, setDataset] = useState<ChosenDataset | null>(null);
  const [preset, setPreset] = useState('standard');
  const [form, setForm] = useState({
    adapterName: '', domain: 'medical', rank: 16, alpha: 32, dropout: 0.05, epochs: 1, learningRate: 0.0002, warmupRatio: 0.03, batchSize: 4,
    gradientAccumulation: 1, maxSeqLength: 512, seed: 42, maxSteps: '', evalLimit: '', validationFraction: 0, evalEverySteps: '',
    earlyStoppingPatience: '', checkpointEverySteps: '', initialRank: 24, targetRank: 8, tinit: 10, tfinal: 10, deltaT: 5,
  });
  const [choices, setChoices] = useState({
    allLinear: true, targetModules: [...BLOCK_MODULES] as string[], useRslora: false, useDora: false, adalora: false, packing: false,
    lrScheduler: 'linear' as 'linear' | 'cosine' | 'constant', quantization: 'none' as 'none' | '4bit', precision: 'auto' as 'auto' | 'bf16' | 'fp32',
  });
  // Set by "Clone and edit" on a job page (/finetune?from=JOB_ID): the job whose data set and settings prefill the form.
  const [cloneFrom, setCloneFrom] = useState<string | null>(null);
  const [cloned, setCloned] = useState<{ namespace: string; dataset: string } | null>(null);
  const source = useQuery(trpc.finetune.get.queryOptions({ jobId: cloneFrom ?? '' }, { enabled: cloneFrom !== null }));
  const sourceDataset = useQuery(trpc.datasets.get.queryOptions({ id: source.data?.dataset?.id ?? 0 }, { enabled: Boolean(source.data?.dataset) }));
  // Empty keeps an existing adapter's visibility; a new adapter is public then.
  const [visibility, setVisibility] = useState<'' | 'public' | 'private'>('');
  const create = useMutation(trpc.finetune.create.mutationOptions({ onSuccess: ({ jobId }) => router.push(`/jobs/${jobId}`) }));

  useEffect(() => {
    if (!baseModelId && baseModels.data?.[0]) setBaseModelId(baseModels.data[0].id);
  }, [baseModels.data, baseModelId]);

  // Read in an effect instead of useSearchParams, so the page still renders statically.
  useEffect(() => {
    const from = new URLSearchParams(window.location.search).get('from');
    if (from && /^[0-9a-f-]{36}$/i.test(from)) setCloneFrom(from);
  }, []);

  useEffect(() => {
    const job = source.data;
    const version = sourceDataset.data;
    if (!job || !version || cloned) return;
    const params = job.params as { adapterName: string; domain: string | null; evalLimit: number | null; hyperparameters: Hyperparameters };
    const h = params.hyperparameters;
    const text = (value: number | null | undefined) => (value === null || value === undefined ? '' : String(value));
    setBaseModelId(job.baseModelId);
    setDataset({ id: version.id, report: version.report as unknown as Report, lineage: version.lineage });
    setForm((f) => ({
      ...f, adapterName: params.adapterName, domain: params.domain ?? 'general', rank: h.rank, alpha: h.alpha, dropout: h.dropout, epochs: h.epochs,
      learningRate: h.learningRate, warmupRatio: h.warmupRatio, batchSize: h.batchSize, gradientAccumulation: h.gradientAccumulation,
      maxSeqLength: h.maxSeqLength, seed: h.seed, maxSteps: text(h.maxSteps), evalLimit: text(params.evalLimit), validationFraction: h.validationFraction,
      evalEverySteps: text(h.evalEverySteps), earlyStoppingPatience: text(h.earlyStoppingPatience), checkpointEverySteps: text(h.checkpointEverySteps),
      ...(h.adalora ? { initialRank: h.adalora.initialRank, targetRank: h.adalora.targetRank, tinit: h.adalora.tinit, tfinal: h.adalora.tfinal, deltaT: h.adalora.deltaT } : {}),
    }));
    setChoices({
      allLinear: h.targetModules === 'all-linear', targetModules: h.targetModules === 'all-linear' ? [...BLOCK_MODULES] : h.targetModules,
      useRslora: h.useRslora, useDora: h.useDora, adalora: h.adalora !== null, packing: h.packing, lrScheduler: h.lrScheduler,
      quantization: h.quantization, precision: h.precision,
    });
    setCloned({ namespace: job.namespace, dataset: `${version.name} v${version.version}` });
  }, [source.data, sourceDataset.data, cloned]);

  if (me.data === null) return <p>Sign in to fine-tune: <a href="/signin?callbackUrl=/finetune">Sign in</a></p>;

  const choosePreset = (key: string) => {
    setPreset(key);
    const chosen = presets.data?.[key as keyof typeof presets.data];
    if (chosen) setForm((f) => ({ ...f, rank: chosen.rank, alpha: chosen.alpha, initialRank: Math.round(chosen.rank * 1.5), targetRank: chosen.rank }));
  };

  const numberField = (key: keyof typeof form, label: string, step = 'any') => (
    <label>{label}<br /><input type="number" step={step} value={form[key]} onChange={(e) => setForm({ ...form, [key]: e.target.value })} style={{ width: 120 }} /></label>
  );

  return (
    <>
      <h1>Fine-tune a LoRA adapter</h1>
      {source.error && <p className="error">Cannot clone job {cloneFrom}: {source.error.message}</p>}
      {cloned && (
        <p data-testid="clone-source">Cloned from <a href={`/jobs/${cloneFrom}`}>job {cloneFrom}</a> in {cloned.namespace}: data set {cloned.dataset} and its settings.
          Edit anything below, or upload another data set.</p>
      )}
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
          <p className="muted">Presets by task difficulty set rank and alpha (twice the rank); every value below can be edited.</p>
          {presets.data && Object.entries(presets.data).map(([key, p]) => (
            <div key={key}>
              <label><input type="radio" name="preset" checked={preset === key} onChange={() => choosePreset(key)} /> {p.label}</label>{' '}
              <span className="muted">{p.description}</span>
            </div>
          ))}
          <div className="row">
            <label>Adapter name<br /><input aria-label="Adapter name" value={form.adapterName} onChange={(e) => setForm({ ...form, adapterName: e.target.value })} /></label>
            <label>Domain<br /><select value={form.domain} onChange={(e) => setForm({ ...form, domain: e.target.value })}>
              {['medical', 'finance', 'industry', 'general'].map((d) => <option key={d}>{d}</option>)}</select></label>
            <label>Visibility<br /><select aria-label="Adapter visibility" value={visibility} onChange={(e) => setVisibility(e.target.value === 'private' || e.target.value === 'public' ? e.target.value : '')}>
              <option value="">Public, or unchanged for an existing adapter</option>
              <option value="public">Public</option>
              <option value="private">Private: only members of the namespace</option></select></label>
          </div>
          <h3>LoRA</h3>
          <div className="row">
            {numberField('rank', 'Rank', '1')}
            {numberField('alpha', 'Alpha')}
            {numberField('dropout', 'Dropout')}
            <label><input type="checkbox" checked={choices.useRslora} onChange={(e) => setChoices({ ...choices, useRslora: e.target.checked })} /> rsLoRA (scale by alpha/√rank)</label>
            <label><input type="checkbox" checked={choices.useDora} disabled={choices.adalora} onChange={(e) => setChoices({ ...choices, useDora: e.target.checked })} /> DoRA</label>
            <label><input type="checkbox" checked={choices.adalora} onChange={(e) => setChoices({ ...choices, adalora: e.target.checked, useDora: false })} /> AdaLoRA (prunes ranks during training)</label>
          </div>
          {choices.adalora && (
            <div className="row">
              {numberField('initialRank', 'Initial rank', '1')}
              {numberField('targetRank', 'Target rank', '1')}
              {numberField('tinit', 'Steps before pruning (tinit)', '1')}
              {numberField('tfinal', 'Final steps with fixed ranks (tfinal)', '1')}
              {numberField('deltaT', 'Steps between reallocations (deltaT)', '1')}
            </div>
          )}
          <p>
            <label><input type="radio" name="targets" checked={choices.allLinear} onChange={() => setChoices({ ...choices, allLinear: true })} /> All linear layers of the decoder blocks (attention and MLP)</label>{' '}
            <label><input type="radio" name="targets" checked={!choices.allLinear} onChange={() => setChoices({ ...choices, allLinear: false })} /> Only these:</label>{' '}
            {BLOCK_MODULES.map((name) => (
              <label key={name}><input type="checkbox" disabled={choices.allLinear} checked={choices.targetModules.includes(name)}
                onChange={(e) => setChoices({ ...choices, targetModules: e.target.checked ? [...choices.targetModules, name] : choices.targetModules.filter((m) => m !== name) })} /> {name} </label>
            ))}
          </p>
          <h3>Training</h3>
          <div className="row">
            {numberField('learningRate', 'Learning rate')}
            <label>Schedule<br /><select aria-label="Learning rate schedule" value={choices.lrScheduler} onChange={(e) => setChoices({ ...choices, lrScheduler: e.target.value as typeof choices.lrScheduler })}>
              <option value="linear">linear decay</option><option value="cosine">cosine</option><option value="constant">constant</option></select></label>
            {numberField('warmupRatio', 'Warmup (share of steps)')}
            {numberField('epochs', 'Epochs')}
            {numberField('batchSize', 'Batch size', '1')}
            {numberField('gradientAccumulation', 'Gradient accumulation', '1')}
            {numberField('maxSeqLength', 'Max sequence length (tokens)', '1')}
            <label><input type="checkbox" checked={choices.packing} onChange={(e) => setChoices({ ...choices, packing: e.target.checked })} /> Sequence packing</label>
            {numberField('seed', 'Seed', '1')}
            {numberField('maxSteps', 'Max steps (optional)', '1')}
          </div>
          <div className="row">
            {numberField('validationFraction', 'Validation share (0 to 0.5)')}
            {numberField('evalEverySteps', 'Validation every N steps', '1')}
            {numberField('earlyStoppingPatience', 'Early stopping patience (evaluations)', '1')}
            {numberField('checkpointEverySteps', 'Checkpoint every N steps', '1')}
            {numberField('evalLimit', 'Evaluation items (empty: all)', '1')}
          </div>
          <div className="row">
            <label>Base weights<br /><select aria-label="Quantization" value={choices.quantization} onChange={(e) => setChoices({ ...choices, quantization: e.target.value as typeof choices.quantization })}>
              <option value="none">full precision</option><option value="4bit">4-bit QLoRA (CUDA runner with bitsandbytes)</option></select></label>
            <label>Precision<br /><select aria-label="Precision" value={choices.precision} onChange={(e) => setChoices({ ...choices, precision: e.target.value as typeof choices.precision })}>
              <option value="auto">auto (bf16 where the GPU supports it)</option><option value="bf16">bf16 (CUDA runner only)</option><option value="fp32">fp32</option></select></label>
          </div>
          <p>
            <button disabled={create.isPending} onClick={() => create.mutate({
              ...(cloned && dataset.id === sourceDataset.data?.id ? { namespace: cloned.namespace } : {}),
              datasetVersionId: dataset.id, baseModelId, adapterName: form.adapterName, domain: form.domain, description: `LoRA fine-tune on ${form.adapterName}`,
              evalLimit: optionalNumber(form.evalLimit), visibility: visibility || undefined,
              hyperparameters: {
                rank: Number(form.rank), alpha: Number(form.alpha), dropout: Number(form.dropout),
                targetModules: choices.allLinear ? 'all-linear' : choices.targetModules,
                useRslora: choices.useRslora, useDora: choices.useDora,
                adalora: choices.adalora
                  ? { initialRank: Number(form.initialRank), targetRank: Number(form.targetRank), tinit: Number(form.tinit), tfinal: Number(form.tfinal), deltaT: Number(form.deltaT) }
                  : null,
                learningRate: Number(form.learningRate), lrScheduler: choices.lrScheduler, warmupRatio: Number(form.warmupRatio), epochs: Number(form.epochs),
                batchSize: Number(form.batchSize), gradientAccumulation: Number(form.gradientAccumulation), maxSeqLength: Number(form.maxSeqLength),
                packing: choices.packing, seed: Number(form.seed), maxSteps: optionalNumber(form.maxSteps),
                validationFraction: Number(form.validationFraction), evalEverySteps: optionalNumber(form.evalEverySteps),
                earlyStoppingPatience: optionalNumber(form.earlyStoppingPatience), checkpointEverySteps: optionalNumber(form.checkpointEverySteps),
                quantization: choices.quantization, precision: choices.precision,
              },
            })}>Start fine-tune</button>
          </p>
          {create.error && <p className="error">{create.error.message}</p>}
        </div>
      )}
    </>
  );
}
