'use client';
import type { ApolloCache, ApolloClient } from '@apollo/client';
import { useApolloClient, useMutation, useReadQuery, type QueryRef } from '@apollo/client/react';
import Link from 'next/link';
import { useEffect, useRef, useState, type FormEvent, type RefObject } from 'react';
import { NO_RESUME } from '@/lib/herald-transport';
import {
  DELETE_MESSAGE, EDIT_MESSAGE, MESSAGE_FRAGMENT, POST_MESSAGE, REACT, ROOM_COUNTS_FRAGMENT, ROOM_EVENTS, ROOM_PAGE,
  ROOM_PRESENCE, SET_TYPING, type Message, type PresenceEvent, type RoomEvent, type RoomPageData, type User,
} from '@/lib/operations';
import { readProblem, textProblem } from '@/lib/shared';
import { useConnectionStatus, useSession } from '../../providers';

/**
 * How often, at most, the composer calls setTyping while the user types.
 * Herald shows a user typing for 5 s after each call, so one call every 2 s
 * keeps the indicator on without a request per keystroke.
 */
export const TYPING_EVERY_MS = 2000;

/**
 * The most messages a room page keeps: a page left open on a busy room
 * would otherwise keep, copy and render every message ever posted while it
 * was open (an hour at 20 a second is 72,000). The oldest go first, and
 * followRoom evicts them from the cache too.
 */
export const MAX_SHOWN = 500;

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
 * else). A message already shown is updated in place, never shown twice, and
 * of two versions of it the latest is kept: an event older than what the
 * page shows (the answer to its own later edit or deletion came first) is
 * dropped. (This works because the subscription's results are not written
 * into the cache by Apollo, followRoom: only what this returns is.)
 */
export function withEvent(data: RoomPageData | null, ev: RoomEvent, awaiting: Set<string>): RoomPageData | undefined {
  if (!data?.room) return undefined;
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
  const next = [...rest.slice(0, pos), kept, ...rest.slice(pos)];
  return withNodes(data as RoomPageData & { room: Page }, next.slice(Math.max(0, next.length - MAX_SHOWN)));
}

/**
 * The room page's live events: roomEvents after the cursor `after`, each
 * applied to the page's list in the cache with withEvent. The subscription
 * is run with fetchPolicy 'no-cache': Apollo would otherwise write each
 * event's message into the cache before withEvent sees it, over whatever
 * newer version the page had. Returns the function that ends it.
 */
export function followRoom(client: ApolloClient, roomId: string, opts: {
  after: string | null;
  awaiting: Set<string>;
  /** Each event's cursor, before it is applied: where a new subscription goes on from. */
  onCursor: (cursor: string) => void;
  onError: (err: { message: string }) => void;
}): () => void {
  const sub = client.subscribe({ query: ROOM_EVENTS, variables: { roomId, after: opts.after }, fetchPolicy: 'no-cache' }).subscribe({
    next: ({ data, error }) => {
      if (error) {
        opts.onError(error);
        return;
      }
      if (!data) return;
      const ev = data.roomEvents;
      opts.onCursor(ev.cursor);
      let dropped: string[] = [];
      client.cache.batch({
        update(cache) {
          // The room's counts, as the room list shows them.
          cache.writeFragment({ id: cache.identify({ __typename: 'Room', id: ev.room.id }), fragment: ROOM_COUNTS_FRAGMENT, data: ev.room });
          cache.updateQuery({ query: ROOM_PAGE, variables: { roomId } }, (prev) => {
            const next = withEvent(prev, ev, opts.awaiting);
            if (next?.room && prev?.room) {
              const kept = new Set(next.room.messages.nodes.map((n) => n.id));
              dropped = prev.room.messages.nodes.filter((n) => !kept.has(n.id)).map((n) => n.id);
            }
            return next;
          });
        },
      });
      // Messages no longer shown (beyond MAX_SHOWN) leave the cache too.
      for (const id of dropped) client.cache.evict({ id: client.cache.identify({ __typename: 'Message', id }) });
      if (dropped.length > 0) client.cache.gc();
    },
    error: opts.onError,
  });
  return () => {
    sub.unsubscribe();
    // The page's own posts whose place the subscription had not delivered
    // leave the cached list: the next page on this room (Back restores its
    // list from the cache) follows from a cursor before them, and its
    // replay puts each in its place. Left at the end, an earlier post of
    // someone else would be placed after them.
    const left = new Set(opts.awaiting);
    opts.awaiting.clear();
    if (left.size === 0) return;
    client.cache.updateQuery({ query: ROOM_PAGE, variables: { roomId } }, (prev) => {
      if (!prev?.room || !prev.room.messages.nodes.some((n) => left.has(n.id))) return undefined;
      return withNodes(prev as RoomPageData & { room: Page }, prev.room.messages.nodes.filter((n) => !left.has(n.id)));
    });
  };
}

/**
 * Writes a mutation's answer, a message, into the cache unless the cache has
 * the same or a later version of it (the subscription delivered the change,
 * or a later one, before the answer came: two connections, either may be
 * first). Mutations that answer a message are run with fetchPolicy
 * 'no-cache' and this as their update.
 */
export function keepLatest(cache: ApolloCache, m: Message): void {
  const id = cache.identify({ __typename: 'Message', id: m.id });
  const shown = cache.readFragment({ id, fragment: MESSAGE_FRAGMENT });
  if (shown && shown.version >= m.version) return;
  cache.writeFragment({ id, fragment: MESSAGE_FRAGMENT, data: m });
}

/**
 * An edit, shown at once (optimistic, at the next version) and then as
 * Herald answers it, unless the page has a later version by then.
 */
export function editOptions(m: Message, text: string) {
  return {
    mutation: EDIT_MESSAGE,
    variables: { id: m.id, version: m.version, text },
    fetchPolicy: 'no-cache',
    optimisticResponse: { editMessage: { ...m, text, version: m.version + 1, editedAt: new Date().toISOString() } },
    update: (cache, { data }) => { if (data) keepLatest(cache, data.editMessage); },
  } satisfies ApolloClient.MutateOptions<{ editMessage: Message }, { id: string; version: number; text: string }>;
}

/** A deletion: as an edit. */
export function deleteOptions(m: Message) {
  return {
    mutation: DELETE_MESSAGE,
    variables: { id: m.id, version: m.version },
    fetchPolicy: 'no-cache',
    optimisticResponse: { deleteMessage: { ...m, text: '', deleted: true, version: m.version + 1 } },
    update: (cache, { data }) => { if (data) keepLatest(cache, data.deleteMessage); },
  } satisfies ApolloClient.MutateOptions<{ deleteMessage: Message }, { id: string; version: number }>;
}

/**
 * A reaction. Its answer is not written into the cache: a reaction changes
 * no version, so nothing tells whether the answer is older than what the
 * subscription delivered (another user's reaction, a deletion); the
 * REACTIONS_CHANGED event, which arrives in log order, shows it.
 */
export function reactOptions(messageId: string, emoji: string) {
  return {
    mutation: REACT,
    variables: { messageId, emoji },
    fetchPolicy: 'no-cache',
  } satisfies ApolloClient.MutateOptions<{ react: Message }, { messageId: string; emoji: string }>;
}

/**
 * A post of the composer. Nothing of it is in the cache while it is in
 * flight (the page shows it from its own state, after the cached list: an
 * optimistic list in the cache would hide every message the subscription
 * delivers meanwhile). Its answer calls onAnswer, then puts the stored
 * message at the end of the list unless the subscription has shown it
 * already (its answer is not written into the cache otherwise, so it never
 * overwrites what the subscription delivered since, a reaction say); it waits
 * there (awaiting) until the subscription delivers it in its place.
 */
export function postOptions({ roomId, text, key, awaiting, onAnswer, following }: {
  roomId: string; text: string; key: string; awaiting: Set<string>; onAnswer?: () => void;
  /** Whether the page still follows the room: an answer after it left is not put in the list (the next page's replay places it). */
  following?: () => boolean;
}) {
  return {
    mutation: POST_MESSAGE,
    variables: { roomId, text, key },
    fetchPolicy: 'no-cache',
    update: (cache, { data }) => {
      const m = data?.postMessage;
      if (!m) return;
      onAnswer?.();
      if (following && !following()) return;
      cache.updateQuery({ query: ROOM_PAGE, variables: { roomId } }, (prev) => {
        if (!prev?.room || prev.room.messages.nodes.some((n) => n.id === m.id)) return undefined;
        awaiting.add(m.id);
        return withNodes(prev as RoomPageData & { room: Page }, [...prev.room.messages.nodes, m]);
      });
    },
  } satisfies ApolloClient.MutateOptions<{ postMessage: Message }, { roomId: string; text: string; key: string }>;
}

/** How the page shows a post of its own before Herald has answered it. */
export function pendingMessage(key: string, text: string, user: string): Message {
  return {
    __typename: 'Message', id: `pending-${key}`, text, version: 1, deleted: false,
    createdAt: new Date().toISOString(), editedAt: null, reactions: [],
    author: { __typename: 'User', id: `pending-${user}`, name: user },
  };
}

/** The composer's hold on the posts shown as pending (Room's state). */
interface PendingPosts {
  add: (m: Message) => void;
  /** The post was answered, or failed: it is no longer shown as pending. */
  settle: (id: string) => void;
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
  const client = useApolloClient();
  const [problem, setProblem] = useState('');
  const awaiting = useRef(new Set<string>());
  // This page's posts not answered yet, shown after the room's messages
  // (never in the cache: see postOptions). A post answered is dropped from
  // what is shown at once (settled), in the same render as its stored
  // message appears in the list, and from the state just after.
  const [pending, setPending] = useState<Message[]>([]);
  const settled = useRef(new Set<string>());
  const [posts] = useState<PendingPosts>(() => ({
    add: (m) => {
      settled.current.delete(m.id); // a post sent again after it failed has the same key
      setPending((p) => [...p.filter((x) => x.id !== m.id), m]);
    },
    settle: (id) => {
      settled.current.add(id);
      setPending((p) => p.filter((x) => x.id !== id));
    },
  }));
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
  // Whether followRoom runs: a post answered after the page stopped
  // following is not put in the cached list (postOptions).
  const following = useRef(false);

  useEffect(() => {
    if (!exists) return;
    following.current = true;
    const stop = followRoom(client, roomId, {
      after: cursor.current,
      awaiting: awaiting.current,
      onCursor: (c) => { cursor.current = c; },
      onError: (err) => setProblem(`live updates stopped: ${err.message}`),
    });
    return () => {
      following.current = false;
      stop();
    };
  }, [client, roomId, exists]);

  if (!data?.room) {
    if (error) return <p className="error" role="alert">This room cannot be shown: {readProblem(error)}. <Link href="/">All rooms</Link></p>;
    return <p>No such room. <Link href="/">All rooms</Link></p>;
  }
  return (
    <section>
      <h1 data-testid="room-name">{data.room.name}</h1>
      <PresenceList {...presence} />
      <ul className="messages" data-testid="messages">
        {data.room.messages.nodes.map((m) => <MessageItem key={m.id} message={m} />)}
        {pending.filter((m) => !settled.current.has(m.id)).map((m) => <MessageItem key={m.id} message={m} />)}
      </ul>
      {problem && <p className="error" role="alert">{problem}</p>}
      <div className="bottom">
        {/* Typing lasts seconds: nothing is said of it while out of date. */}
        <TypingIndicator presence={presence.stale ? null : presence.presence} />
        <Composer roomId={roomId} awaiting={awaiting} posts={posts} following={following} />
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
  const client = useApolloClient();
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
    client.mutate(editOptions(m, text)).catch(fail);
  };
  const del = () => {
    client.mutate(deleteOptions(m)).catch(fail);
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
        <span className="text" data-testid="message-text" dir="auto">{m.deleted ? 'message deleted' : m.text}</span>
      )}
      {m.editedAt && !m.deleted && <span className="meta">(edited)</span>}
      {!m.deleted && !pending && (
        <span className="reactions">
          {['👍', '🎉', '❤️'].map((emoji) => {
            const count = m.reactions.find((r) => r.emoji === emoji)?.count ?? 0;
            return (
              <button key={emoji} type="button" disabled={!user} aria-label={`react ${emoji}`} data-testid="reaction" data-emoji={emoji}
                onClick={() => client.mutate(reactOptions(m.id, emoji)).catch(fail)}>
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

function Composer({ roomId, awaiting, posts, following }: {
  roomId: string; awaiting: Awaiting; posts: PendingPosts; following: RefObject<boolean>;
}) {
  const { user } = useSession();
  const client = useApolloClient();
  const [text, setText] = useState('');
  const [problem, setProblem] = useState('');
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
    // Shown at once, faded, after the room's messages, until Herald answers.
    const shown = pendingMessage(key, body, user);
    posts.add(shown);
    const settle = () => posts.settle(shown.id);
    client.mutate(postOptions({ roomId, text: body, key, awaiting: awaiting.current, onAnswer: settle, following: () => following.current })).then(settle, (err: Error) => {
      settle();
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
