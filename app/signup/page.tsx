'use client';

import { useMutation } from '@tanstack/react-query';
import { signIn } from 'next-auth/react';
import { useTRPC } from '@/lib/trpc-react';

export default function SignUpPage() {
  const trpc = useTRPC();
  const signUp = useMutation(trpc.auth.signUp.mutationOptions());
  return (
    <div className="card" style={{ maxWidth: 420 }}>
      <h1>Create an account</h1>
      <form onSubmit={async (event) => {
        event.preventDefault();
        const form = new FormData(event.currentTarget);
        const input = { email: String(form.get('email')), password: String(form.get('password')), namespace: String(form.get('namespace')) };
        await signUp.mutateAsync(input);
        await signIn('credentials', { email: input.email, password: input.password, callbackUrl: '/' });
      }}>
        <p><label>User name (your namespace)<br /><input name="namespace" required pattern="[a-z0-9][a-z0-9\-]{1,38}" /></label></p>
        <p><label>Email<br /><input name="email" type="email" required /></label></p>
        <p><label>Password (8 characters or more)<br /><input name="password" type="password" minLength={8} required /></label></p>
        <button type="submit" disabled={signUp.isPending}>Sign up</button>
        {signUp.error && <p className="error">{signUp.error.message}</p>}
      </form>
    </div>
  );
}
