'use client';

import { useQuery } from '@tanstack/react-query';
import { useTRPC } from '@/lib/trpc-react';

// How often the bell checks for new notifications, in milliseconds.
const POLL_MS = 15_000;

/** Renders the nav's link to the notification list with the number of unread notifications. */
export function NotificationBell() {
  const trpc = useTRPC();
  const list = useQuery(trpc.notifications.list.queryOptions(undefined, { refetchInterval: POLL_MS }));
  const unread = list.data?.unread ?? 0;
  return (
    <a href="/notifications" aria-label={`Notifications, ${unread} unread`} data-testid="notification-bell">
      🔔{unread > 0 && <span className="badge" data-testid="notification-unread">{unread}</span>}
    </a>
  );
}
