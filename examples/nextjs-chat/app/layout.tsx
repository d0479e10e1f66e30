import type { Metadata } from 'next';
import { cookies } from 'next/headers';
import { connection } from 'next/server';
import type { ReactNode } from 'react';
import { authMode, heraldUrl } from '@/lib/config';
import { USER_COOKIE, USER_NAME } from '@/lib/shared';
import { Header } from './header';
import { Providers } from './providers';
import './globals.css';

export const metadata: Metadata = { title: 'Herald chat' };

export default async function RootLayout({ children }: { children: ReactNode }) {
  // Rendered per request: Herald's URL and the auth mode come from the
  // environment of the running server, not of the build.
  await connection();
  const picked = (await cookies()).get(USER_COOKIE)?.value;
  const user = picked && USER_NAME.test(picked) ? picked : null;
  const session = { url: heraldUrl(), user, auth: authMode() };
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
