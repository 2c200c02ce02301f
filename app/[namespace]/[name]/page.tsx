import { TRPCError } from '@trpc/server';
import { marked } from 'marked';
import { notFound, permanentRedirect } from 'next/navigation';
import { parseModelCard } from '@/server/formats/model-card';
import { selfReportedMetrics } from '@/server/formats/model-index';
import sanitizeHtml from 'sanitize-html';
import { archiveFileName, archivePath } from '@/lib/adapter-archive';
import { formatBytes } from '@/lib/format';
import { serverCaller } from '@/lib/server-caller';
import { DatasetLineage } from '../../finetune/dataset-lineage';
import { DownloadButton } from './download-button';
import { EdgeDownloadButton, ExportButton } from './edge-section';
import { EvaluateButton } from './evaluate-button';
import { LikeButton } from './like-button';
import { VisibilityToggle } from './visibility-toggle';
import { Playground } from './playground';
import { getEnv } from '@/server/env';

export const dynamic = 'force-dynamic';

/** Renders a model card as Markdown with scripts, event handlers and raw HTML stripped. */
function renderModelCard(markdown: string): string {
  const { body } = parseModelCard(markdown);
  return sanitizeHtml(marked.parse(body, { async: false }) as string, {
    allowedTags: sanitizeHtml.defaults.allowedTags.concat(['img', 'h1', 'h2']),
    allowedAttributes: { a: ['href', 'title'], img: ['src', 'alt', 'title'], code: ['class'] },
    allowedSchemes: ['http', 'https', 'mailto'],
  });
}

export default async function AdapterPage({ params, searchParams }: { params: Promise<{ namespace: string; name: string }>; searchParams: Promise<{ version?: string }> }) {
  const { namespace, name } = await params;
  const { version } = await searchParams;
  const caller = await serverCaller();
  let page;
  try {
    page = await caller.adapters.get({ namespace, name, version: version ? Number(version) : undefined });
  } catch (error) {
    if (error instanceof TRPCError && (error.code === 'NOT_FOUND' || error.code === 'BAD_REQUEST')) notFound();
    throw error;
  }
  const me = await caller.auth.me();
  const edge = await caller.edge.get({ namespace: page.namespace, name: page.name, version: page.version.version });
  const report = edge.bundle?.report ?? null;
  const percent = (value: number | null) => (value === null ? '–' : `${(value * 100).toFixed(1)}%`);
  const suites = await caller.evals.suites();
  if (page.redirectedFrom) permanentRedirect(`/${page.namespace}/${page.name}${version ? `?version=${encodeURIComponent(version)}` : ''}`);
  const summary = page.version.configSummary as Record<string, unknown>;
  const card = page.version.cardMetadata as { license?: string | null; tags?: string[]; datasets?: string[]; language?: string[] };
  const lineage = page.version.lineage as Record<string, unknown> | null;
  const selfReported = selfReportedMetrics((page.version.cardMetadata as { extra?: Record<string, unknown> }).extra);

  return (
    <>
      <h1>{page.namespace}/{page.name}</h1>
      <p className="muted">{page.description}</p>
      {page.deprecation && (
        <div className="card error" data-testid="deprecation">
          Deprecated: {page.deprecation.message}
          {page.deprecation.replacedBy && <> Use <a href={`/${page.deprecation.replacedBy}`}>{page.deprecation.replacedBy}</a> instead.</>}
        </div>
      )}
      {page.version.yanked && (
        <div className="card error" data-testid="yanked">Version {page.version.version} was yanked: {page.version.yanked.reason}</div>
      )}
      <div className="row">
        {page.visibility === 'private' && <span className="badge" data-testid="private-badge">private</span>}
        {page.canManage && <VisibilityToggle namespace={page.namespace} name={page.name} visibility={page.visibility} />}
        <span className="badge">base: {page.baseModelId}</span>
        {page.domain && <span className="badge">{page.domain}</span>}
        <span>{page.downloads} downloads</span>
        {card.license && <span className="badge">license: {card.license}</span>}
        <span>{formatBytes(page.version.sizeBytes)}</span>
        <LikeButton namespace={page.namespace} name={page.name} likes={page.likes} />
        {me?.namespace === page.namespace && <a href={`/publish?name=${encodeURIComponent(page.name)}&base=${encodeURIComponent(page.baseModelId)}`}>Publish a new version</a>}
      </div>
      {(card.tags?.length ?? 0) > 0 && (
        <div className="row" style={{ marginTop: 8 }}>
          {card.tags!.map((tag) => <a key={tag} className="badge" href={`/?tag=${encodeURIComponent(tag)}`}>{tag}</a>)}
        </div>
      )}
      <nav aria-label="Versions" className="row" style={{ marginTop: 12 }} data-testid="versions">
        <strong>Versions:</strong>
        {page.versions.map((v) => (
          v.version === page.version.version
            ? <span key={v.version} className="badge" aria-current="page">v{v.version}{v.label ? ` (${v.label})` : ''}{v.yanked ? ' yanked' : ''}</span>
            : <a key={v.version} href={`?version=${v.version}`}>v{v.version}{v.label ? ` (${v.label})` : ''}{v.yanked ? ' yanked' : ''}</a>
        ))}
      </nav>
      {page.version.changelog && (
        <div className="card" style={{ marginTop: 12 }}><strong>Changes in v{page.version.version}{page.version.label ? ` (${page.version.label})` : ''}</strong><pre>{page.version.changelog}</pre></div>
      )}

      {page.version.warnings.length > 0 && (
        <div className="card"><strong>Warnings</strong><ul>{page.version.warnings.map((w) => <li key={w}>{w}</li>)}</ul></div>
      )}

      <h2>Playground</h2>
      <Playground namespace={page.namespace} name={page.name} version={page.version.version} maxTokensLimit={getEnv().PLAYGROUND_MAX_TOKENS} />

      <h2>Files (version {page.version.version})</h2>
      <p>
        <a href={archivePath(page.namespace, page.name, page.version.version)} download={archiveFileName(page.namespace, page.name, page.version.version)}
          data-testid="archive-link">Download all (.tar)</a>
      </p>
      <table>
        <thead><tr><th>File</th><th>Size</th><th>sha256</th><th /></tr></thead>
        <tbody>
          {page.files.map((f) => (
            <tr key={f.path}>
              <td>{f.path}</td><td>{formatBytes(f.size)}</td><td><code>{f.sha256.slice(0, 12)}…</code></td>
              <td><DownloadButton namespace={page.namespace} name={page.name} version={page.version.version} path={f.path} /></td>
            </tr>
          ))}
        </tbody>
      </table>

      <h2>Configuration</h2>
      <table>
        <tbody>
          <tr><th>PEFT type</th><td>{String(summary.peftType)}</td></tr>
          <tr><th>Rank</th><td>{String(summary.rank)}{Array.isArray(summary.ranks) && summary.ranks.length > 1 ? ` (pattern: ${summary.ranks.join(', ')})` : ''}</td></tr>
          <tr><th>Alpha</th><td>{String(summary.alpha)}</td></tr>
          <tr><th>Target modules</th><td>{Array.isArray(summary.targetModules) ? summary.targetModules.join(', ') : String(summary.targetModules)}</td></tr>
          {typeof summary.baseModelNameOrPath === 'string' && <tr><th>Base model named in the config</th><td>{summary.baseModelNameOrPath}</td></tr>}
          <tr><th>LoRA modules</th><td>{String(summary.loraModules)}</td></tr>
          {(card.datasets?.length ?? 0) > 0 && <tr><th>Data sets</th><td>{card.datasets!.join(', ')}</td></tr>}
          {(card.language?.length ?? 0) > 0 && <tr><th>Language</th><td>{card.language!.join(', ')}</td></tr>}
          <tr><th>Trainable parameters</th><td>{Number(summary.trainableParameters).toLocaleString('en-US')} ({(Number(summary.shareOfBase) * 100).toFixed(3)}% of the base model)</td></tr>
        </tbody>
      </table>

      <h2>Where it can be served</h2>
      <table data-testid="serving">
        <tbody>{((summary.serving ?? []) as { engine: string; supported: boolean; reasons: string[] }[]).map((target) => (
          <tr key={target.engine}><th>{target.engine}</th><td>{target.supported ? 'yes' : 'no'}</td><td>{target.reasons.join('; ')}</td></tr>))}
        </tbody>
      </table>

      <h2>Scores</h2>
      <EvaluateButton namespace={page.namespace} name={page.name} version={page.version.version} suites={suites.map((s) => ({ id: s.id, displayName: s.displayName }))} />
      {page.scores.length === 0 ? <p className="muted">No evaluation yet.</p> : (
        <table>
          <thead><tr><th>Task</th><th>Accuracy</th><th>Correct / total</th><th>Settings</th><th>Run</th></tr></thead>
          <tbody>{page.scores.map((s) => (
            <tr key={s.id}>
              <td><a href={`/leaderboard/${s.taskId}`}>{s.taskId}</a></td>
              <td>{(s.accuracy * 100).toFixed(1)}% ± {(s.stderr * 100).toFixed(1)}{s.contaminated && <strong className="error"> contamination flagged</strong>}</td><td>{s.correct} / {s.total}</td>
              <td>{s.numFewshot}-shot, seed {s.seed ?? '–'}{s.suiteId ? `, suite ${s.suiteId}` : ''}</td>
              <td><a href={`/evals/runs/${s.id}`}>details</a></td>
            </tr>))}
          </tbody>
        </table>
      )}

      <h2>Edge</h2>
      <section data-testid="edge">
        <p className="muted">The adapter merged into its base model as ONNX (float32 and 8-bit weights), measured on the runner&apos;s CPU with onnxruntime-node against PyTorch.</p>
        {edge.latestJob && edge.latestJob.state !== 'succeeded' && (
          <p>Latest export: <a href={`/jobs/${edge.latestJob.id}`}>{edge.latestJob.state}</a>{edge.latestJob.error ? ` (${edge.latestJob.error.message})` : ''}</p>
        )}
        {me && <ExportButton namespace={page.namespace} name={page.name} version={page.version.version} />}
        {!edge.bundle ? <p className="muted">No edge export of this version yet.</p> : (
          <>
            {report && (
              <table data-testid="edge-report">
                <thead><tr><th>Variant</th><th>Size</th><th>Max |logit diff|</th><th>Top-1 agreement</th><th>ms / token</th><th>Peak memory</th><th>Task accuracy</th></tr></thead>
                <tbody>
                  <tr><td>PyTorch (reference)</td><td>–</td><td>0</td><td>100%</td><td>{report.pytorch.msPerToken.toFixed(2)}</td><td>–</td><td>{percent(report.pytorch.taskAccuracy)}</td></tr>
                  {report.variants.map((variant) => (
                    <tr key={variant.name}>
                      <td>{variant.name}</td><td>{formatBytes(variant.sizeBytes)}</td><td>{variant.maxAbsLogitDiff.toExponential(2)}</td>
                      <td>{percent(variant.top1Agreement)}</td><td>{variant.msPerToken.toFixed(2)}</td><td>{formatBytes(variant.peakMemoryBytes)}</td><td>{percent(variant.taskAccuracy)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {report && (
              <p className="muted">
                {report.prompts} reference prompts, {report.generateTokens} generated tokens per timing, {report.runtime}.
                {report.task && <> Task {report.task.id}: {report.task.items} items; int8 picks the same answer as fp32 on {percent(report.int8TaskAgreement)}.</>}
              </p>
            )}
            <table>
              <thead><tr><th>File</th><th>Size</th><th>sha256</th><th /></tr></thead>
              <tbody>
                {edge.bundle.files.map((f) => (
                  <tr key={f.path}>
                    <td>{f.path}</td><td>{formatBytes(f.size)}</td><td><code>{f.sha256.slice(0, 12)}…</code></td>
                    <td><EdgeDownloadButton namespace={page.namespace} name={page.name} version={page.version.version} path={f.path} /></td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
      {selfReported.length > 0 && (
        <>
          <h2>Self-reported scores</h2>
          <p className="muted">From the model card&apos;s model-index; not measured here and never ranked.</p>
          <table data-testid="self-reported">
            <thead><tr><th>Data set</th><th>Metric</th><th>Value</th></tr></thead>
            <tbody>{selfReported.map((m, index) => (
              <tr key={index}><td>{m.dataset}{m.task ? ` (${m.task})` : ''}</td><td>{m.metric}</td><td>{m.value} <span className="badge">self-reported</span></td></tr>))}
            </tbody>
          </table>
        </>
      )}

      {lineage && (
        <>
          <h2>Lineage</h2>
          {Boolean((lineage.dataset as { lineage?: unknown } | undefined)?.lineage) && (
            <><p>Training data {String((lineage.dataset as { name: string }).name)} v{String((lineage.dataset as { version: number }).version)}:</p>
              <DatasetLineage lineage={(lineage.dataset as { lineage: unknown }).lineage} /></>
          )}
          <pre>{JSON.stringify(lineage, null, 2)}</pre>
        </>
      )}

      <h2>Model card</h2>
      {page.version.modelCard
        ? <div className="card markdown" dangerouslySetInnerHTML={{ __html: renderModelCard(page.version.modelCard) }} />
        : <p className="muted">No README.md in this version.</p>}
    </>
  );
}
