'use client';
import Link from 'next/link';
import { useState, type FormEvent } from 'react';
import { USER_COOKIE, USER_NAME } from '@/lib/shared';
import { useConnectionStatus, useSession } from './providers';

/** The connection state, for people and tests: data-testid="connection". */
export function Connection() {
  const { state, transport } = useConnectionStatus();
  return (
    <span className={`connection ${state}`} data-testid="connection" data-state={state} data-transport={transport}
      title={transport === 'sse' ? 'Server-Sent Events' : 'WebSocket'}>
      {state}
    </span>
  );
}

/** Who you are: in dev mode a name you pick; with jwt the name a token is asked for. */
export function UserPicker() {
  const { user, auth } = useSession();
  const [name, setName] = useState(user ?? '');
  const [problem, setProblem] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (!USER_NAME.test(name)) {
      setProblem('letters, digits, . _ - (at most 32)');
      return;
    }
    document.cookie = `${USER_COOKIE}=${encodeURIComponent(name)}; path=/; samesite=lax; max-age=31536000`;
    window.location.reload(); // a new identity is a new connection
  };
  return (
    <form className="user" onSubmit={submit} aria-label="user">
      <label>
        {user ? 'You are' : 'Pick a name'}{' '}
        <input name="user" value={name} onChange={(e) => setName(e.target.value)} placeholder="name" size={12} />
      </label>
      <button type="submit">{user ? 'Switch' : 'Use'}</button>
      <small className="auth">{auth === 'jwt' ? 'JWT (development tokens)' : 'dev mode'}</small>
      {problem && <small className="problem">{problem}</small>}
    </form>
  );
}

export function Header() {
  return (
    <header>
      <Link href="/" className="brand">Herald chat</Link>
      <UserPicker />
      <Connection />
    </header>
  );
}
