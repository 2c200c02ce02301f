'use client';

import { signIn } from 'next-auth/react';
import { useState } from 'react';

/** Renders the sign-in form: email and password, and a button per OAuth provider the server offers. */
export function SignInForm(props: { providers: { id: string; name: string }[] }) {
  const [error, setError] = useState<string | null>(null);
  const callbackUrl = () => new URLSearchParams(window.location.search).get('callbackUrl') ?? '/';
  return (
    <div className="card" style={{ maxWidth: 420 }}>
      <h1>Sign in</h1>
      <form onSubmit={async (event) => {
        event.preventDefault();
        const form = new FormData(event.currentTarget);
        const result = await signIn('credentials', { email: String(form.get('email')), password: String(form.get('password')), redirect: false });
        if (result?.error) setError('Wrong email or password.');
        else window.location.href = callbackUrl();
      }}>
        <p><label>Email<br /><input name="email" type="email" required autoComplete="email" /></label></p>
        <p><label>Password<br /><input name="password" type="password" required autoComplete="current-password" /></label></p>
        <button type="submit">Sign in</button>
        {error && <p className="error">{error}</p>}
      </form>
      {props.providers.map((provider) => (
        <p key={provider.id}>
          <button type="button" className="secondary" data-testid={`sign-in-${provider.id}`} onClick={() => signIn(provider.id, { callbackUrl: callbackUrl() })}>
            Sign in with {provider.name}
          </button>
        </p>
      ))}
      <p className="muted">No account? <a href="/signup">Sign up</a>.</p>
    </div>
  );
}
