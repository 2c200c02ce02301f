'use client';

import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

export default function NotificationsPage() {
  const trpc = useTRPC();
  const queryClient = useQueryClient();
  const list = useQuery(trpc.notifications.list.queryOptions());
  const markRead = useMutation(trpc.notifications.markRead.mutationOptions({ onSuccess: () => void queryClient.invalidateQueries() }));

  if (list.error) return <p className="error">{list.error.message}</p>;
  if (!list.data) return <p>Loading…</p>;
  return (
    <div className="card">
      <h1>Notifications</h1>
      <p>{list.data.unread} unread{' '}
        {list.data.unread > 0 && <button className="secondary" onClick={() => markRead.mutate({})} disabled={markRead.isPending}>Mark all as read</button>}</p>
      {markRead.error && <p className="error">{markRead.error.message}</p>}
      {list.data.items.length === 0 ? <p className="muted">Nothing yet: you get a notification when a job you started ends.</p> : (
        <ul data-testid="notification-list">
          {list.data.items.map((item) => (
            <li key={item.id} style={{ fontWeight: item.readAt ? 'normal' : 'bold' }}>
              <span className="muted">{new Date(item.createdAt).toLocaleString()}</span>{' '}
              {item.jobId ? <a href={`/jobs/${item.jobId}`}>{item.message}</a> : item.message}{' '}
              {!item.readAt && <button className="secondary" onClick={() => markRead.mutate({ ids: [item.id] })} disabled={markRead.isPending}>Mark as read</button>}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
