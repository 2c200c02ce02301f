'use client';

import { useQuery } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

export default function JobsPage() {
  const trpc = useTRPC();
  const jobs = useQuery(trpc.finetune.list.queryOptions(undefined, { refetchInterval: 3000 }));
  if (jobs.error) return <p className="error">{jobs.error.message} <a href="/signin">Sign in</a></p>;
  return (
    <>
      <h1>Jobs</h1>
      <table>
        <thead><tr><th>Job</th><th>Kind</th><th>State</th><th>Created</th></tr></thead>
        <tbody>{jobs.data?.map((job) => (
          <tr key={job.id}>
            <td><a href={`/jobs/${job.id}`}>{job.id.slice(0, 8)}</a> {String((job.params as { adapterName?: string }).adapterName ?? (job.params as { taskId?: string }).taskId ?? '')}</td>
            <td>{job.kind}</td><td className={`state-${job.state}`}>{job.state}</td><td>{new Date(job.createdAt).toLocaleString('en-GB')}</td>
          </tr>))}
        </tbody>
      </table>
    </>
  );
}
