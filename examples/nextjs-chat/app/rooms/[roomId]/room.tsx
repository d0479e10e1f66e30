'use client';
import { useApolloClient, useMutation, useQueryRefHandlers, useReadQuery, type QueryRef } from '@apollo/client/react';
import Link from 'next/link';
import { useEffect, useRef, useState, type FormEvent, type RefObject } from 'react';
import { backoff, NO_RESUME } from '@/lib/herald-transport';
import {
  DELETE_MESSAGE, EDIT_MESSAGE, PAGE_SIZE, POST_MESSAGE, REACT, ROOM_CATCH_UP, ROOM_EVENTS, ROOM_PAGE, ROOM_PRESENCE, SET_TYPING,
  type Message, type PresenceEvent, type RoomEvent, type RoomPageData, type User,
} from '@/lib/operations';
import { textProblem } from '@/lib/shared';
import { holdReconnecting, useSession, useTransportStatus } from '../../providers';

/**
 * How often, at most, the composer calls setTyping while the user types.
 * Herald shows a user typing for 5 s after each call, so one call every 2 s
 * keeps the indicator on without a request per keystroke.
 */
export const TYPING_EVERY_MS = 2000;

/**
 * An empty room's catch-up read (below) of a page that fails is tried again,
 * with the transport's back-off (about 250 ms, doubling, to 4 s), for this
 * long at most; only then is the page told that messages may be missing.
 */
const CATCH_UP_GIVE_UP_MS = 60_000;

/**
 * An empty room's catch-up reads at most this many pages (of PAGE_SIZE
 * messages: 1000) before it gives up and tells the page that messages may
 * be missing, rather than read an endless room.
 */
const CATCH_UP_MAX_PAGES = 20;

type Page = NonNullable<RoomPageData['room']>;
/**
 * Ids of messages this page posted whose place in the list is not known yet:
 * until the subscription delivers them, or an empty room's catch-up read holds them.
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

/**
 * The union of the list shown and an empty room's catch-up read, in the
 * server's order. The read is the room's messages from the first on, in
 * posting order, up to a post the subscription delivered or the end of the
 * list when its last page was read: a message shown but not read was posted
 * after every message read (a post the subscription delivered since, or one
 * of this page's whose answer came since), so it goes after them, in the
 * order shown (the subscription's). Of a message both shown and read, or
 * read and changed by an event meanwhile (`seen`: the subscription's latest
 * of each message, which for one not shown yet was not shown), the latest
 * version is kept.
 */
function union(shown: Message[], fresh: Message[], seen: ReadonlyMap<string, Message>): Message[] {
  const byId = new Map(shown.map((m) => [m.id, m]));
  const freshIds = new Set(fresh.map((m) => m.id));
  const latest = (m: Message) =>
    [byId.get(m.id), seen.get(m.id)].reduce<Message>((a, b) => (b && b.version > a.version ? b : a), m);
  return [...fresh.map(latest), ...shown.filter((m) => !freshIds.has(m.id))];
}

function uniqueKey(): string {
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

export function Room({ roomId, queryRef }: { roomId: string; queryRef: QueryRef<RoomPageData, { roomId: string }> }) {
  const client = useApolloClient();
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
  // The hand-over: the cursor of the query this page was rendered from, then
  // of every event received (so a re-subscription goes on from there).
  const cursor = useRef<string | null | undefined>(undefined);
  if (cursor.current === undefined) cursor.current = data?.room?.messages.pageInfo.endCursor ?? null;
  // A room with no message at render has no cursor: the page subscribes
  // from now and, once live, reads the room's messages from the first on
  // (ROOM_CATCH_UP, page after page) for what came in between, up to a
  // message the subscription delivered or the end of the list. Needed until
  // that read succeeds (across re-subscriptions).
  const catchUp = useRef<boolean | undefined>(undefined);
  if (catchUp.current === undefined) catchUp.current = cursor.current == null;
  // Ids of the posts the subscription delivered while the catch-up is
  // needed: once a page read holds one, every later message is the
  // subscription's, and the read is complete.
  const delivered = useRef(new Set<string>());
  // The latest version the subscription delivered of each message while the
  // catch-up is needed: an edit, deletion or reaction of a message the read
  // brings is not shown when it comes (the message is not yet), and the
  // read may be older than it.
  const seen = useRef(new Map<string, Message>());
  const exists = !!data?.room;
  const presence = usePresence(roomId, exists);

  useEffect(() => {
    if (!exists) return;
    let cancelled = false; // this subscription is over: stop retrying (the next one takes over)
    let reading = false;
    let release: (() => void) | null = null; // shows the connection as reconnecting while retrying
    // One page of the catch-up read, after the cursor given (null: from the
    // room's first message). A page that fails is tried again with back-off
    // (a replica or the token route briefly down): meanwhile the events go on
    // arriving and are shown, and the connection shows reconnecting until it
    // succeeds. undefined: this subscription is over, or the read was given
    // up (the page says so).
    const readPage = async (after: string | null) => {
      const started = Date.now();
      for (let attempt = 0; !cancelled; attempt++) {
        try {
          const { data: fresh } = await client.query({ query: ROOM_CATCH_UP, variables: { roomId, after }, fetchPolicy: 'no-cache' });
          release?.();
          release = null;
          return cancelled ? undefined : fresh;
        } catch (err) {
          if (cancelled) return undefined;
          const message = (err as Error).message;
          if (Date.now() - started >= CATCH_UP_GIVE_UP_MS) {
            catchUp.current = false;
            setProblem(`messages posted as this page loaded may be missing: ${message}`);
            return undefined;
          }
          release ??= holdReconnecting();
          console.warn(`herald: reading the room again failed (${message}); trying again`);
          await backoff(attempt);
        }
      }
      return undefined;
    };
    // The catch-up: the room's messages from the first on, page after page
    // (after each page's endCursor), until a page holds a post the
    // subscription delivered (every later one is the subscription's) or the
    // list ends. What was read is then merged by id with what the page shows
    // (union), so nothing is lost or shown twice.
    const catchUpNow = async () => {
      reading = true;
      const read: Message[] = [];
      let after: string | null = null;
      for (let pages = 0; !cancelled; pages++) {
        if (pages === CATCH_UP_MAX_PAGES) {
          // What was read is not merged: it does not reach what the
          // subscription delivered, so where those go among it is not known.
          catchUp.current = false;
          setProblem(`messages posted as this page loaded may be missing: more than ${pages * PAGE_SIZE} were posted before it was live`);
          break;
        }
        const fresh = await readPage(after);
        if (!fresh) break;
        if (!fresh.room) { // the room is gone: nothing to catch up on
          catchUp.current = false;
          break;
        }
        const { nodes, pageInfo } = fresh.room.messages;
        read.push(...nodes);
        if (pageInfo.hasNextPage && pageInfo.endCursor && nodes.length > 0 && !read.some((m) => delivered.current.has(m.id))) {
          after = pageInfo.endCursor;
          continue;
        }
        // Every message read is where the read put it: one of this page's
        // own posts among them (posted before its subscription was live,
        // which never delivers it) no longer waits at the end of the list.
        for (const m of read) awaiting.current.delete(m.id);
        client.cache.updateQuery({ query: ROOM_PAGE, variables: { roomId } }, (prev) =>
          prev?.room ? withNodes(prev as RoomPageData & { room: Page }, union(prev.room.messages.nodes, read, seen.current)) : prev);
        catchUp.current = false;
        break;
      }
      if (!catchUp.current) {
        delivered.current.clear();
        seen.current.clear();
      }
      reading = false;
      release?.();
      release = null;
    };
    const unsubscribe = subscribeToMore({
      document: ROOM_EVENTS,
      variables: { roomId, after: cursor.current },
      updateQuery: (_, { previousData, complete, subscriptionData }) => {
        const ev = subscriptionData.data.roomEvents;
        cursor.current = ev.cursor;
        if (catchUp.current) {
          if (ev.kind === 'MESSAGE_POSTED') delivered.current.add(ev.message.id);
          const had = seen.current.get(ev.message.id);
          if (!had || had.version < ev.message.version) seen.current.set(ev.message.id, ev.message);
        }
        if (catchUp.current && !reading) void catchUpNow();
        if (!complete) return undefined;
        return withEvent(previousData, ev, awaiting.current) as typeof previousData | undefined;
      },
      onError: (err) => setProblem(`live updates stopped: ${err.message}`),
    });
    return () => {
      cancelled = true;
      release?.();
      release = null;
      unsubscribe();
    };
  }, [client, roomId, exists, subscribeToMore]);

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
  const { state } = useTransportStatus();
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
