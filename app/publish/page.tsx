'use client';

import { useQuery } from '@tanstack/react-query';
import { useRouter, useSearchParams } from 'next/navigation';
import { Suspense, useEffect, useState } from 'react';
import { formatBytes } from '@/lib/format';
import { useTRPC, useTRPCClient } from '@/lib/trpc-react';
import { describeBrowserFile, uploadParts } from '@/lib/upload';
import { finalizeUpload } from '@/lib/upload-protocol';

// The two files every PEFT `save_pretrained` folder has; other files are allowed too.
const REQUIRED = ['adapter_config.json', 'adapter_model.safetensors'];
const PICKLE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/i;

function Publish() {
  const trpc = useTRPC();
  const client = useTRPCClient();
  const router = useRouter();
  const params = useSearchParams()!;
  const me = useQuery(trpc.auth.me.queryOptions());
  const baseModels = useQuery(trpc.baseModels.list.queryOptions());

  const [files, setFiles] = useState<File[]>([]);
  const [form, setForm] = useState({ name: params.get('name') ?? '', baseModelId: params.get('base') ?? '', description: '', domain: '', label: '', changelog: '', visibility: '' });
  const [stage, setStage] = useState<{ label: string; fraction: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [warnings, setWarnings] = useState<string[]>([]);

  useEffect(() => {
    if (!form.baseModelId && baseModels.data?.[0]) setForm((f) => ({ ...f, baseModelId: baseModels.data[0]!.id }));
  }, [baseModels.data, form.baseModelId]);

  if (me.data === null) return <p>Sign in to publish: <a href="/signin?callbackUrl=/publish">Sign in</a></p>;

  const names = files.map((f) => f.name);
  const missing = REQUIRED.filter((name) => !names.includes(name));
  const pickles = names.filter((name) => PICKLE.test(name));
  const total = files.reduce((sum, f) => sum + f.size, 0);

  async function publish() {
    setError(null);
    setWarnings([]);
    try {
      const described = [];
      let hashed = 0;
      for (const file of files) {
        described.push(await describeBrowserFile(file, file.name, (fraction) => setStage({ label: `Checking ${file.name}`, fraction: total === 0 ? 1 : (hashed + fraction * file.size) / total })));
        hashed += file.size;
      }
      const begun = await client.adapters.beginUpload.mutate({ files: described });
      const done = new Map<string, number>();
      setStage({ label: 'Uploading', fraction: 0 });
      for (const target of begun.files) {
        const file = files.find((f) => f.name === target.path)!;
        await uploadParts(file, target, (bytes) => {
          done.set(file.name, bytes);
          const sent = [...done.values()].reduce((a, b) => a + b, 0);
          setStage({ label: 'Uploading', fraction: total === 0 ? 1 : sent / total });
        });
      }
      setStage({ label: 'Checking the adapter against its base model', fraction: 1 });
      // Large files take several calls while the server checks their sha256; each returns its progress.
      const published = await finalizeUpload(() => client.adapters.publish.mutate({
        uploadId: begun.uploadId, name: form.name, baseModelId: form.baseModelId, description: form.description || undefined,
        domain: form.domain || null, label: form.label || null, changelog: form.changelog || null,
        visibility: form.visibility === 'public' || form.visibility === 'private' ? form.visibility : undefined,
      }), (done, totalBytes) => setStage({ label: 'Verifying the uploaded files', fraction: totalBytes === 0 ? 1 : done / totalBytes }));
      if (published.warnings.length > 0) setWarnings(published.warnings);
      router.push(`/${published.namespace}/${published.name}?version=${published.version}`);
    } catch (failure) {
      setStage(null);
      setError((failure as Error).message);
    }
  }

  const field = (key: keyof typeof form, label: string, placeholder = '') => (
    <label>{label}<br /><input value={form[key]} placeholder={placeholder} onChange={(e) => setForm({ ...form, [key]: e.target.value })} style={{ width: 320 }} /></label>
  );

  return (
    <>
      <h1>Publish an adapter</h1>
      <p className="muted">
        Choose the files of a PEFT LoRA folder (from <code>model.save_pretrained(dir)</code>): adapter_config.json,
        adapter_model.safetensors and a README.md model card. Publishing under an existing name adds its next version.
        Files go straight to storage; the adapter is checked against its base model before the version appears.
      </p>
      <div className="card">
        <div className="row">
          {field('name', 'Adapter name', 'pubmedqa-lora')}
          <label>Base model<br />
            <select aria-label="Base model" value={form.baseModelId} onChange={(e) => setForm({ ...form, baseModelId: e.target.value })}>
              {baseModels.data?.map((m) => <option key={m.id} value={m.id}>{m.displayName}</option>)}
            </select>
          </label>
          <label>Domain<br />
            <select aria-label="Domain" value={form.domain} onChange={(e) => setForm({ ...form, domain: e.target.value })}>
              <option value="">From the model card</option>
              {['medical', 'finance', 'industry', 'general'].map((d) => <option key={d} value={d}>{d}</option>)}
            </select>
          </label>
          <label>Visibility<br />
            <select aria-label="Visibility" value={form.visibility} onChange={(e) => setForm({ ...form, visibility: e.target.value })}>
              <option value="">Public, or unchanged for an existing adapter</option>
              <option value="public">Public: everyone can find and download it</option>
              <option value="private">Private: only members of its namespace</option>
            </select>
          </label>
        </div>
        <div className="row" style={{ marginTop: 8 }}>
          {field('description', 'Description')}
          {field('label', 'Version label (optional)', '1.0.0')}
        </div>
        <label>Changes in this version (optional)<br />
          <textarea aria-label="Changelog" value={form.changelog} onChange={(e) => setForm({ ...form, changelog: e.target.value })} rows={3} style={{ width: 660 }} />
        </label>
        <p>
          <label>Adapter files<br />
            <input aria-label="Adapter files" type="file" multiple onChange={(e) => setFiles([...(e.target.files ?? [])])} />
          </label>
        </p>
        {files.length > 0 && (
          <table>
            <tbody>{files.map((f) => <tr key={f.name}><td>{f.name}</td><td>{formatBytes(f.size)}</td></tr>)}</tbody>
          </table>
        )}
        {files.length > 0 && missing.length > 0 && <p className="error">Missing {missing.join(' and ')}.</p>}
        {pickles.length > 0 && <p className="error">{pickles.join(', ')}: pickle files are never accepted, because loading them can run code; save with safe_serialization=True.</p>}
        <p>
          <button type="button" onClick={publish} disabled={!form.name || !form.baseModelId || files.length === 0 || missing.length > 0 || pickles.length > 0 || stage !== null}>
            Publish
          </button>
        </p>
        {stage && (
          <p>
            {stage.label}: <progress aria-label="Upload progress" max={1} value={stage.fraction} /> {(stage.fraction * 100).toFixed(0)}%
          </p>
        )}
        {error && <p className="error" role="alert">{error}</p>}
        {warnings.length > 0 && <ul>{warnings.map((w) => <li key={w}>{w}</li>)}</ul>}
      </div>
    </>
  );
}

export default function PublishPage() {
  return <Suspense><Publish /></Suspense>;
}
