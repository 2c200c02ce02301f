'use client';

import { useMutation } from '@tanstack/react-query';
import { useSession } from 'next-auth/react';
import { useRef, useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

type Column = 'base' | 'adapter';

interface Run {
  prompt: string;
  temperature: number;
  maxTokens: number;
  seed: number;
}

/**
 * Prompt box that streams the base model's and the adapter's outputs side by side from
 * POST /api/playground (NDJSON). Nothing is stored unless the user clicks "Save".
 */
export function Playground(props: { namespace: string; name: string; version: number; maxTokensLimit: number }) {
  const trpc = useTRPC();
  const { data: session } = useSession();
  const [prompt, setPrompt] = useState('');
  const [temperature, setTemperature] = useState(0);
  const [maxTokens, setMaxTokens] = useState(Math.min(64, props.maxTokensLimit));
  const [outputs, setOutputs] = useState<Record<Column, string>>({ base: '', adapter: '' });
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [lastRun, setLastRun] = useState<Run | null>(null);
  const abort = useRef<AbortController | null>(null);
  const save = useMutation(trpc.playground.save.mutationOptions());

  if (!session) return <p className="muted" data-testid="playground-sign-in">Sign in to try this adapter in the playground.</p>;

  async function generate() {
    setError(null);
    setOutputs({ base: '', adapter: '' });
    setLastRun(null);
    save.reset();
    setRunning(true);
    abort.current = new AbortController();
    try {
      const response = await fetch('/api/playground', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ namespace: props.namespace, name: props.name, version: props.version, prompt, temperature, maxTokens }),
        signal: abort.current.signal,
      });
      if (!response.ok || !response.body) {
        const body = await response.json().catch(() => null) as { error?: { message?: string } } | null;
        const wait = response.headers.get('Retry-After');
        setError(`${body?.error?.message ?? `request failed with HTTP ${response.status}`}${wait ? ` (retry in ${wait} s)` : ''}`);
        return;
      }
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      let seed = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        const lines = buffered.split('\n');
        buffered = lines.pop()!;
        for (const line of lines) {
          if (!line) continue;
          const event = JSON.parse(line) as { type: string; column?: Column; text?: string; seed?: number; message?: string };
          if (event.type === 'start') seed = event.seed!;
          if (event.type === 'token') setOutputs((current) => ({ ...current, [event.column!]: current[event.column!] + event.text! }));
          if (event.type === 'error') setError(event.message ?? 'generation failed');
          if (event.type === 'end') setLastRun({ prompt, temperature, maxTokens, seed });
        }
      }
    } catch (caught) {
      if ((caught as Error).name !== 'AbortError') setError((caught as Error).message);
    } finally {
      setRunning(false);
    }
  }

  return (
    <div className="card" data-testid="playground">
      <textarea aria-label="Prompt" data-testid="playground-prompt" rows={3} style={{ width: '100%' }} value={prompt} onChange={(event) => setPrompt(event.target.value)} placeholder="Ask something…" />
      <div className="row">
        <label>Temperature <input aria-label="Temperature" type="number" min={0} max={2} step={0.1} value={temperature} onChange={(event) => setTemperature(Number(event.target.value))} style={{ width: 70 }} /></label>
        <label>Max tokens <input aria-label="Max tokens" type="number" min={1} max={props.maxTokensLimit} value={maxTokens} onChange={(event) => setMaxTokens(Number(event.target.value))} style={{ width: 70 }} /></label>
        <button data-testid="playground-generate" disabled={running || prompt.trim() === ''} onClick={generate}>{running ? 'Generating…' : 'Generate'}</button>
        {running && <button className="secondary" onClick={() => abort.current?.abort()}>Stop</button>}
        {lastRun && (
          <button className="secondary" data-testid="playground-save" disabled={save.isPending || save.isSuccess}
            onClick={() => save.mutate({ namespace: props.namespace, name: props.name, version: props.version, ...lastRun, baseOutput: outputs.base, adapterOutput: outputs.adapter })}>
            {save.isSuccess ? 'Saved' : 'Save'}
          </button>
        )}
      </div>
      {error && <p className="error" data-testid="playground-error">{error}</p>}
      {save.error && <p className="error">{save.error.message}</p>}
      <div style={{ display: 'grid', gridTemplateColumns: '1fr 1fr', gap: 12, marginTop: 8 }}>
        <div><strong>Base model</strong><pre data-testid="playground-base" style={{ whiteSpace: 'pre-wrap', minHeight: 60 }}>{outputs.base}</pre></div>
        <div><strong>With this adapter</strong><pre data-testid="playground-adapter" style={{ whiteSpace: 'pre-wrap', minHeight: 60 }}>{outputs.adapter}</pre></div>
      </div>
    </div>
  );
}
