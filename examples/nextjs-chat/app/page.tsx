import { PreloadQuery } from '@/lib/apollo-rsc';
import { ROOMS } from '@/lib/operations';
import { RoomList } from './room-list';

// The room list, rendered on the server from the ROOMS query; in the
// browser it goes on live from that query's resumeCursor (roomCreated(after:)).
// errorPolicy 'all' (RoomList reads it with the same): a list that cannot be
// read is said so on the page, not a failed render.
export default function Home() {
  return (
    <PreloadQuery query={ROOMS} errorPolicy="all">
      <RoomList />
    </PreloadQuery>
  );
}
