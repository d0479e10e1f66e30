import type { Metadata } from 'next';
import { connection } from 'next/server';
import type { ReactNode } from 'react';
import { authMode, heraldUrl } from '@/lib/config';
import { viewerName } from '@/lib/viewer';
import { Header } from './header';
import { Providers } from './providers';
import './globals.css';

export const metadata: Metadata = { title: 'Herald chat' };

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Rendered per request: Herald's URL and the auth mode come from the
  // environment of the running server, not of the build.
  await connection();
  const session = { url: heraldUrl(), user: await viewerName(), auth: authMode() };
  return (
    <html lang="en">
      <body>
        <Providers session={session}>
          <Header />
          <main>{children}</main>
        </Providers>
      </body>
    </html>
  );
}
