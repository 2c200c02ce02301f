'use client';

import { signOut, useSession } from 'next-auth/react';
import { NotificationBell } from './notification-bell';

export function NavUser() {
  const { data, status } = useSession();
  if (status === 'loading') return null;
  if (!data) return <><a href="/signin">Sign in</a><a href="/signup">Sign up</a></>;
  return (
    <>
      <a href="/settings/teams">Teams</a>
      <a href="/settings/tokens">Tokens</a>
      <a href="/settings/webhooks">Webhook</a>
      <NotificationBell />
      <span className="muted">{data.user?.name}</span>
      <button className="secondary" onClick={() => signOut({ callbackUrl: '/' })}>Sign out</button>
    </>
  );
}
