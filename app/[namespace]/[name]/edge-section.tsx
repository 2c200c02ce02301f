'use client';

import { useMutation } from '@tanstack/react-query';
import { useState } from 'react';
import { useTRPC } from '@/lib/trpc-react';

/** Queues an ONNX edge export of the version and links to the job. */
export function ExportButton(props: { namespace: string; name: string; version: number }) {
  const trpc = useTRPC();
  const [jobId, setJobId] = useState<string | null>(null);
  const request = useMutation(trpc.edge.requestExport.mutationOptions({ onSuccess: ({ jobId: id }) => setJobId(id) }));
  return (
    <p>
      <button onClick={() => request.mutate(props)} disabled={request.isPending || jobId !== null} data-testid="edge-export">Export to ONNX</button>
      {jobId && <> Export queued: <a href={`/jobs/${jobId}`}>job {jobId.slice(0, 8)}</a></>}
      {request.error && <span className="error"> {request.error.message}</span>}
    </p>
  );
}

export function EdgeDownloadButton(props: { namespace: string; name: string; version: number; path: string }) {
  const trpc = useTRPC();
  const download = useMutation(trpc.edge.downloadUrl.mutationOptions({
    onSuccess: ({ url }) => { window.location.href = url; },
  }));
  return (
    <>
      <button className="secondary" onClick={() => download.mutate(props)} disabled={download.isPending} aria-label={`Download ${props.path}`}>Download</button>
      {download.error && <span className="error"> {download.error.message}</span>}
    </>
  );
}
