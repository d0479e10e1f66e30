// Package chat is Herald's example domain: rooms, messages and reactions,
// kept as events in an EventLog (a *pubsub.Log in production).
//
// A Service is the domain on one replica. It provides:
//
//   - commands (CreateRoom, CreatePrivateRoom, AddMember, RemoveMember,
//     PostMessage, EditMessage, DeleteMessage, React), judged against the
//     room's current state before anything is appended, and appended only
//     if the room has not moved on since, so that every replica accepts the
//     same events; a caller reads its own write; in a private room only
//     members may do anything;
//   - queries (Rooms, VisibleRoom, RoomInfo, LookupRoom, Members, Messages,
//     Message, RoomStats), those a viewer asks checked against a private
//     room's members;
//   - live changes (Watch, WatchAfter, WatchAfterFor) of a room (RoomTopic)
//     or of the room directory (RoomsTopic), in log order, resumable after a
//     sequence; a private room's watcher carries its Gate, its members as
//     the replica applies them;
//   - readiness and counters for the transport (Ready, Stats, Applied).
//
// A replica follows the room directory in full and holds a room's messages
// only while it is used, loaded from the log on demand and evicted over
// Options.RoomCache. Errors a client should see are *Error with a Code.
// Migrate copies a log of the earlier, single-stream layout into the
// partitioned one. docs/ARCHITECTURE.md (section 3) says how it is built.
package chat
