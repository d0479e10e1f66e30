import { PreloadQuery } from '@/lib/apollo-rsc';
import { ROOM_PAGE } from '@/lib/operations';
import { Room } from './room';

// A room, rendered on the server from the ROOM_PAGE query (its latest
// messages and its resumeCursor, the room's position when it was read, set
// even for a room with no message); in the browser the page subscribes to
// roomEvents after that cursor, so nothing posted between the render and
// the subscription is missed and nothing shows twice.
export default async function RoomPage({ params }: { params: Promise<{ roomId: string }> }) {
  const { roomId } = await params;
  return (
    <PreloadQuery query={ROOM_PAGE} variables={{ roomId }} errorPolicy="all">
      {(queryRef) => <Room roomId={roomId} queryRef={queryRef} />}
    </PreloadQuery>
  );
}
