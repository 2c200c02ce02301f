import type { ReactNode } from 'react';
import { Providers } from '@/lib/trpc-react';
import { NavUser } from './nav-user';
import './globals.css';

export const metadata = { title: 'Adapter marketplace', description: 'Publish, fine-tune, evaluate and download LoRA adapters' };

export default function RootLayout({ children }: { children: ReactNode }) {
  return (
    <html lang="en">
      <body>
        <Providers>
          <header className="top">
            <a className="brand" href="/">Adapter marketplace</a>
            <a href="/">Browse</a>
            <a href="/publish">Publish</a>
            <a href="/finetune">Fine-tune</a>
            <a href="/jobs">Jobs</a>
            <a href="/leaderboard">Leaderboards</a>
            <span className="spacer" />
            <NavUser />
          </header>
          <main>{children}</main>
        </Providers>
      </body>
    </html>
  );
}
