import { PreloadQuery } from '@/lib/apollo-rsc';
import { ROOMS } from '@/lib/operations';
import { RoomList } from './room-list';

// The room list, rendered on the server from the ROOMS query; in the
// browser it goes on live from that query's resumeCursor (roomCreated(after:)).
export default function Home() {
  return (
    <PreloadQuery query={ROOMS}>
      <RoomList />
    </PreloadQuery>
  );
}
