'use client';
import { useMutation, useSuspenseQuery } from '@apollo/client/react';
import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { CREATE_ROOM, ROOM_CREATED, ROOMS } from '@/lib/operations';
import { readProblem } from '@/lib/shared';
import { useSession } from './providers';

export function RoomList() {
  // errorPolicy 'all', as app/page.tsx preloads it: a list that cannot be
  // read (Herald did not answer the server render in time, say) is said so
  // on the page instead of failing it.
  const { data, error, subscribeToMore } = useSuspenseQuery(ROOMS, { errorPolicy: 'all' });
  // The hand-over: the rendered list's resumeCursor (the room directory's
  // position when it was read, set even when there was no room yet), so
  // roomCreated(after:) delivers every room created since the render, on
  // any replica, then goes on live. A list longer than its first page goes
  // on after that page's endCursor instead: the replay then brings the
  // rooms that did not fit as well (the list does not page), and those
  // created since. The transport keeps the subscription's cursor from then
  // on (a reconnect resumes after the last room received).
  const cursor = useRef<string | null>(null);
  if (cursor.current === null && data?.rooms) {
    const { pageInfo, resumeCursor } = data.rooms;
    cursor.current = pageInfo.hasNextPage && pageInfo.endCursor ? pageInfo.endCursor : resumeCursor;
  }
  const listed = !!data?.rooms;

  useEffect(() => {
    if (!listed) return;
    return subscribeToMore({
      document: ROOM_CREATED,
      variables: { after: cursor.current },
      updateQuery: (_, { previousData, complete, subscriptionData }) => {
        const room = subscriptionData.data.roomCreated;
        if (!complete || previousData.rooms.nodes.some((r) => r.id === room.id)) return undefined;
        return { ...previousData, rooms: { ...previousData.rooms, nodes: [...previousData.rooms.nodes, room] } };
      },
    });
  }, [listed, subscribeToMore]);

  if (!data?.rooms) {
    return (
      <section>
        <h1>Rooms</h1>
        <p className="error" role="alert" data-testid="rooms-error">
          The rooms cannot be shown: {readProblem(error)}.
        </p>
      </section>
    );
  }
  return (
    <section>
      <h1>Rooms</h1>
      <ul className="rooms" data-testid="rooms">
        {data.rooms.nodes.map((room) => (
          <li key={room.id} data-testid="room" data-id={room.id}>
            <Link href={`/rooms/${room.id}`}>{room.name}</Link>
            <span className="meta">{room.messageCount} messages</span>
          </li>
        ))}
      </ul>
      <CreateRoom />
    </section>
  );
}

function CreateRoom() {
  const { user } = useSession();
  const router = useRouter();
  const [name, setName] = useState('');
  const [createRoom, { loading, error }] = useMutation(CREATE_ROOM);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const { data } = await createRoom({ variables: { name } }).catch(() => ({ data: undefined }));
    if (data) router.push(`/rooms/${data.createRoom.id}`);
  };
  if (!user) return <p>Pick a name to create rooms and post.</p>;
  return (
    <form onSubmit={submit} aria-label="create room">
      <input name="name" value={name} onChange={(e) => setName(e.target.value)} placeholder="new room" required />
      <button type="submit" disabled={loading}>Create</button>
      {error && <span className="error">{error.message}</span>}
    </form>
  );
}
