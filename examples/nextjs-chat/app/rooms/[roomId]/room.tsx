'use client';
import { useApolloClient, useMutation, useQueryRefHandlers, useReadQuery, type QueryRef } from '@apollo/client/react';
import Link from 'next/link';
import { useEffect, useRef, useState, type FormEvent, type RefObject } from 'react';
import { NO_RESUME } from '@/lib/herald-transport';
import {
  DELETE_MESSAGE, EDIT_MESSAGE, POST_MESSAGE, REACT, ROOM_EVENTS, ROOM_PAGE, ROOM_PRESENCE, SET_TYPING,
  type Message, type PresenceEvent, type RoomEvent, type RoomPageData, type User,
} from '@/lib/operations';
import { textProblem } from '@/lib/shared';
import { useConnectionStatus, useSession } from '../../providers';

/**
 * How often, at most, the composer calls setTyping while the user types.
 * Herald shows a user typing for 5 s after each call, so one call every 2 s
 * keeps the indicator on without a request per keystroke.
 */
export const TYPING_EVERY_MS = 2000;

type Page = NonNullable<RoomPageData['room']>;
/**
 * Ids of messages this page posted whose place in the list is not known yet:
 * until the subscription delivers them (it does every one, even one posted
 * before it was live: it replays the room from the page's resumeCursor).
 */
type Awaiting = RefObject<Set<string>>;

const withNodes = (data: RoomPageData & { room: Page }, nodes: Message[]): RoomPageData => ({
  ...data, room: { ...data.room, messages: { ...data.room.messages, nodes } },
});

/**
 * The room's list after a live event. The subscription delivers a room's
 * events in log order, so posts are placed in the order they arrive, before
 * any message this page posted whose post the subscription has not yet
 * delivered (a mutation's answer may come before an earlier post of someone
 * else). A message already shown is updated in place, never shown twice.
 */
export function withEvent(data: RoomPageData, ev: RoomEvent, awaiting: Set<string>): RoomPageData | undefined {
  if (!data.room) return undefined;
  const nodes = data.room.messages.nodes;
  const m = ev.message;
  const at = nodes.findIndex((n) => n.id === m.id);
  if (at >= 0 && !(ev.kind === 'MESSAGE_POSTED' && awaiting.has(m.id))) {
    if (nodes[at].version > m.version) return undefined; // older than what is shown
    const next = nodes.slice();
    next[at] = m;
    return withNodes(data as RoomPageData & { room: Page }, next);
  }
  if (ev.kind !== 'MESSAGE_POSTED') return undefined; // a message older than the page
  awaiting.delete(m.id);
  const rest = nodes.filter((n) => n.id !== m.id);
  const firstAwaiting = rest.findIndex((n) => awaiting.has(n.id));
  const pos = firstAwaiting < 0 ? rest.length : firstAwaiting;
  const kept = at >= 0 && nodes[at].version > m.version ? nodes[at] : m;
  return withNodes(data as RoomPageData & { room: Page }, [...rest.slice(0, pos), kept, ...rest.slice(pos)]);
}

function uniqueKey(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

export function Room({ roomId, queryRef }: { roomId: string; queryRef: QueryRef<RoomPageData, { roomId: string }> }) {
  // The page's query, read from the reference its PreloadQuery hands over,
  // which carries its errors too (the cache keeps data only). With
  // errorPolicy 'all' there, a room that cannot be read (FORBIDDEN: a
  // private room the viewer is not a member of; the server renders it as
  // the viewer, lib/apollo-rsc.ts) is said so on the
  // page, which goes on working, instead of failing it.
  const { data, error } = useReadQuery(queryRef);
  const { subscribeToMore } = useQueryRefHandlers(queryRef);
  const [problem, setProblem] = useState('');
  const awaiting = useRef(new Set<string>());
  // The hand-over: the resumeCursor of the query this page was rendered
  // from (the room's log position when it was read, set even when the room
  // had no message), then the cursor of every event received, so that a
  // re-subscription goes on from the last event. roomEvents(after:) replays
  // every change since, on whichever replica serves it (one that is behind
  // waits until it has reached that position), then goes on live: nothing
  // posted between the render and the subscription is missed, and nothing
  // is shown twice (withEvent). There is no catch-up read: the replay is
  // the catch-up, for an empty room too.
  const cursor = useRef<string | null>(null);
  if (cursor.current === null) cursor.current = data?.room?.messages.resumeCursor ?? null;
  const exists = !!data?.room;
  const presence = usePresence(roomId, exists);

  useEffect(() => {
    if (!exists) return;
    return subscribeToMore({
      document: ROOM_EVENTS,
      variables: { roomId, after: cursor.current },
      updateQuery: (_, { previousData, complete, subscriptionData }) => {
        const ev = subscriptionData.data.roomEvents;
        cursor.current = ev.cursor;
        if (!complete) return undefined;
        return withEvent(previousData, ev, awaiting.current) as typeof previousData | undefined;
      },
      onError: (err) => setProblem(`live updates stopped: ${err.message}`),
    });
  }, [roomId, exists, subscribeToMore]);

  if (!data?.room) {
    if (error) return <p className="error" role="alert">This room cannot be shown: {error.message}. <Link href="/">All rooms</Link></p>;
    return <p>No such room. <Link href="/">All rooms</Link></p>;
  }
  return (
    <section>
      <h1 data-testid="room-name">{data.room.name}</h1>
      <PresenceList {...presence} />
      <ul className="messages" data-testid="messages">
        {data.room.messages.nodes.map((m) => <MessageItem key={m.id} message={m} />)}
      </ul>
      {problem && <p className="error" role="alert">{problem}</p>}
      <div className="bottom">
        {/* Typing lasts seconds: nothing is said of it while out of date. */}
        <TypingIndicator presence={presence.stale ? null : presence.presence} />
        <Composer roomId={roomId} awaiting={awaiting} />
      </div>
    </section>
  );
}

interface PresenceState {
  /** The last event received: the room as it is after it. */
  presence: PresenceEvent | null;
  /** Possibly out of date: the connection was lost, and no event has come since. */
  stale: boolean;
  problem: string;
}

/**
 * Who is in the room, live: roomPresence, subscribed once the page is in the
 * browser (there is nothing to render on the server). Each event carries the
 * room as it is after it, so the page keeps the last event and shows it: a
 * SNAPSHOT (the first event, the first after every reconnect or move to SSE,
 * and after a burst of changes) replaces the list, never adds to it.
 */
function usePresence(roomId: string, exists: boolean): PresenceState {
  const client = useApolloClient();
  const { state } = useConnectionStatus();
  const [presence, setPresence] = useState<PresenceEvent | null>(null);
  const [stale, setStale] = useState(false);
  const [problem, setProblem] = useState('');
  // From a lost connection until the new subscription's first event (its
  // SNAPSHOT), what is shown may be out of date.
  useEffect(() => { if (state !== 'connected') setStale(true); }, [state]);
  useEffect(() => {
    if (!exists) return;
    setPresence(null);
    setProblem('');
    const fail = (err: { message: string }) => setProblem(err.message);
    const sub = client.subscribe({ query: ROOM_PRESENCE, variables: { roomId }, context: NO_RESUME, fetchPolicy: 'no-cache' }).subscribe({
      next: ({ data, error }) => {
        if (error) fail(error);
        else if (data) {
          setProblem('');
          setStale(false);
          setPresence(data.roomPresence);
        }
      },
      error: fail,
    });
    return () => sub.unsubscribe();
  }, [client, roomId, exists]);
  return { presence, stale, problem };
}

/** Each user once, in the order given. */
function unique(users: User[]): User[] {
  const seen = new Set<string>();
  return users.filter((u) => !seen.has(u.id) && !!seen.add(u.id));
}

/** "bob is typing…", "bob and carol are typing…", "bob, carol and 2 others are typing…". */
export function typingText(names: string[]): string {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  const others = names.length - 2;
  return `${names[0]}, ${names[1]} and ${others} ${others === 1 ? 'other' : 'others'} are typing…`;
}

/** Whether u is the person looking at the page (users are IDs; in dev mode the name picked). */
function useIsViewer(): (u: User) => boolean {
  const { user } = useSession();
  return (u) => !!user && (u.id === user || u.name === user);
}

/** The "who is here" list: the count, and each user present once (typing ones marked). */
function PresenceList({ presence, stale, problem }: PresenceState) {
  const isViewer = useIsViewer();
  const users = unique(presence?.users ?? []);
  const typing = new Set((presence?.typing ?? []).map((u) => u.id));
  // While the connection is being replaced the list may be out of date: it
  // is shown faded until the new subscription's SNAPSHOT replaces it.
  return (
    <aside className={`presence${stale ? ' stale' : ''}`} data-testid="presence" aria-label="who is here"
      data-count={presence?.count} data-kind={presence?.kind}>
      <span className="count">{presence ? `${presence.count} here:` : 'who is here…'}</span>
      <ul>
        {users.map((u) => (
          <li key={u.id} data-testid="presence-user" data-user={u.id} data-typing={typing.has(u.id) ? 'true' : undefined}>
            {u.name}{isViewer(u) ? ' (you)' : ''}
          </li>
        ))}
      </ul>
      {problem && <small className="error">presence: {problem}</small>}
    </aside>
  );
}

/** Who else is typing, above the composer (the viewer knows when they type). */
function TypingIndicator({ presence }: { presence: PresenceEvent | null }) {
  const isViewer = useIsViewer();
  const names = unique(presence?.typing ?? []).filter((u) => !isViewer(u)).map((u) => u.name);
  return <p className="typing" data-testid="typing" aria-live="polite">{typingText(names)}</p>;
}

function MessageItem({ message: m }: { message: Message }) {
  const { user } = useSession();
  const [editing, setEditing] = useState(false);
  const [problem, setProblem] = useState('');
  const [edit] = useMutation(EDIT_MESSAGE);
  const [remove] = useMutation(DELETE_MESSAGE);
  const [react] = useMutation(REACT);
  const pending = m.id.startsWith('pending-');
  const mine = !!user && m.author.name === user && !pending && !m.deleted;
  const fail = (err: Error) => setProblem(err.message);

  const saveEdit = (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const text = String(new FormData(e.currentTarget).get('edit') ?? '').trim();
    if (text === m.text) {
      setEditing(false);
      return;
    }
    // What Herald would refuse is not sent: the form stays open, with why.
    const refused = textProblem(text);
    if (refused) {
      setProblem(refused);
      return;
    }
    setProblem('');
    setEditing(false);
    edit({
      variables: { id: m.id, version: m.version, text },
      optimisticResponse: { editMessage: { ...m, text, version: m.version + 1, editedAt: new Date().toISOString() } },
    }).catch(fail);
  };
  const del = () => {
    remove({
      variables: { id: m.id, version: m.version },
      optimisticResponse: { deleteMessage: { ...m, text: '', deleted: true, version: m.version + 1 } },
    }).catch(fail);
  };

  return (
    <li data-testid="message" data-id={m.id} data-version={m.version} data-pending={pending ? 'true' : undefined}
      className={m.deleted ? 'deleted' : undefined}>
      <span className="author">{m.author.name}</span>
      {editing ? (
        <form onSubmit={saveEdit} className="edit">
          <input name="edit" defaultValue={m.text} autoFocus aria-label="edit message" />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setEditing(false)}>Cancel</button>
        </form>
      ) : (
        <span className="text" data-testid="message-text">{m.deleted ? 'message deleted' : m.text}</span>
      )}
      {m.editedAt && !m.deleted && <span className="meta">(edited)</span>}
      {!m.deleted && !pending && (
        <span className="reactions">
          {['👍', '🎉', '❤️'].map((emoji) => {
            const count = m.reactions.find((r) => r.emoji === emoji)?.count ?? 0;
            return (
              <button key={emoji} type="button" disabled={!user} aria-label={`react ${emoji}`} data-testid="reaction" data-emoji={emoji}
                onClick={() => react({ variables: { messageId: m.id, emoji } }).catch(fail)}>
                {emoji}{count > 0 ? ` ${count}` : ''}
              </button>
            );
          })}
        </span>
      )}
      {mine && !editing && (
        <span className="actions">
          <button type="button" onClick={() => setEditing(true)}>Edit</button>
          <button type="button" onClick={del}>Delete</button>
        </span>
      )}
      {problem && <span className="error">{problem}</span>}
    </li>
  );
}

function Composer({ roomId, awaiting }: { roomId: string; awaiting: Awaiting }) {
  const { user } = useSession();
  const [text, setText] = useState('');
  const [problem, setProblem] = useState('');
  const [post] = useMutation(POST_MESSAGE);
  const [setTyping] = useMutation(SET_TYPING, { fetchPolicy: 'no-cache' });
  // When this page last called setTyping (0: not since the last send).
  const typingSent = useRef(0);
  // The last post that failed, with its idempotency key: sent again (the
  // error puts its text back in the composer), it is the same post, which
  // Herald stores once even if the failed request did reach it (its answer
  // was lost) and the subscription has shown it already.
  const failed = useRef<{ text: string; key: string } | null>(null);
  if (!user) return <p>Pick a name to post.</p>;

  // Typing: a setTyping as the user starts, then at most one every
  // TYPING_EVERY_MS while they go on, never one per keystroke. Nothing is
  // sent when they stop or send: Herald stops showing them 5 s after the
  // last call.
  const type = (value: string) => {
    setText(value);
    const now = Date.now();
    if (!value.trim() || now - typingSent.current < TYPING_EVERY_MS) return;
    typingSent.current = now;
    setTyping({ variables: { roomId } }).catch((err: Error) => console.warn(`setTyping: ${err.message}`));
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return;
    // What Herald would refuse is neither posted nor shown, even for a moment.
    const refused = textProblem(body);
    if (refused) {
      setProblem(refused);
      return;
    }
    setText('');
    setProblem('');
    typingSent.current = 0; // the next message typed is shown at its first keystroke
    // The same post if the request is retried, or sent again after it failed.
    const key = failed.current?.text === body ? failed.current.key : uniqueKey();
    failed.current = null;
    post({
      variables: { roomId, text: body, key },
      optimisticResponse: {
        postMessage: {
          __typename: 'Message', id: `pending-${key}`, text: body, version: 1, deleted: false,
          createdAt: new Date().toISOString(), editedAt: null, reactions: [],
          author: { __typename: 'User', id: `pending-${user}`, name: user },
        },
      },
      update(cache, { data }) {
        const m = data?.postMessage;
        if (!m) return;
        const optimistic = m.id.startsWith('pending-');
        cache.updateQuery({ query: ROOM_PAGE, variables: { roomId } }, (prev) => {
          if (!prev?.room || prev.room.messages.nodes.some((n) => n.id === m.id)) return undefined;
          // Shown at the end until the subscription delivers it in its place.
          if (!optimistic) awaiting.current.add(m.id);
          return withNodes(prev as RoomPageData & { room: Page }, [...prev.room.messages.nodes, m]);
        });
      },
    }).catch((err: Error) => {
      failed.current = { text: body, key };
      setProblem(`not posted: ${err.message}`);
      setText((t) => t || body);
    });
  };

  return (
    <form className="composer" onSubmit={submit} aria-label="composer">
      <input name="text" value={text} onChange={(e) => type(e.target.value)} placeholder="Message" autoComplete="off" />
      <button type="submit">Send</button>
      {problem && <span className="error" role="alert">{problem}</span>}
    </form>
  );
}
