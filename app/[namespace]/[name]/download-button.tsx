'use client';

import { useMutation } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

export function DownloadButton(props: { namespace: string; name: string; version: number; path: string }) {
  const trpc = useTRPC();
  const download = useMutation(trpc.adapters.downloadUrl.mutationOptions({
    // The presigned URL responds with Content-Disposition: attachment, so the page stays.
    onSuccess: ({ url }) => { window.location.href = url; },
  }));
  return (
    <>
      <button className="secondary" onClick={() => download.mutate(props)} disabled={download.isPending} aria-label={`Download ${props.path}`}>Download</button>
      {download.error && <span className="error"> {download.error.message}</span>}
    </>
  );
}
