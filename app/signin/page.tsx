import { authOptions } from '@/server/auth';
import { SignInForm } from './sign-in-form';

export const dynamic = 'force-dynamic';

/** Lists the OAuth providers the configuration enables (GitHub with GITHUB_ID and GITHUB_SECRET). */
export default function SignInPage() {
  const providers = authOptions().providers.filter((provider) => provider.type === 'oauth').map((provider) => ({ id: provider.id, name: provider.name }));
  return <SignInForm providers={providers} />;
}
