// Every GraphQL operation of the app, and the types of their results.
import { gql, type TypedDocumentNode } from '@apollo/client';

export interface User { __typename?: 'User'; id: string; name: string }
export interface Reaction { __typename?: 'ReactionGroup'; emoji: string; count: number }
export interface Message {
  __typename?: 'Message';
  id: string;
  text: string;
  version: number;
  deleted: boolean;
  createdAt: string;
  editedAt: string | null;
  author: User;
  reactions: Reaction[];
}
export interface RoomSummary {
  __typename?: 'Room';
  id: string;
  name: string;
  messageCount: number;
  lastMessageAt: string | null;
}

// The fields every operation selects, written into each document rather than
// shared as fragments: this module is evaluated once for server components
// and once for the server-side render of client components in one process,
// and graphql-tag would warn about fragments it has seen before.
const MESSAGE_FIELDS = 'id text version deleted createdAt editedAt author { id name } reactions { emoji count }';
const ROOM_FIELDS = 'id name messageCount lastMessageAt';

/**
 * The room list. Its resumeCursor (the room directory's position when the
 * list was read, set even when there is no room yet, unlike
 * pageInfo.endCursor) is where the live list goes on from:
 * roomCreated(after: resumeCursor) delivers every room created since, on
 * any replica. (The list does not page, so it asks for no endCursor.)
 */
export const ROOMS: TypedDocumentNode<
  { rooms: { nodes: RoomSummary[]; pageInfo: { hasNextPage: boolean; endCursor: string | null }; resumeCursor: string } },
  Record<string, never>
> = gql`
  query Rooms {
    rooms(first: 100) {
      nodes { ${ROOM_FIELDS} }
      pageInfo { hasNextPage endCursor }
      resumeCursor
    }
  }
`;

export const ROOM_CREATED: TypedDocumentNode<{ roomCreated: RoomSummary }, { after?: string | null }> = gql`
  subscription RoomCreated($after: String) {
    roomCreated(after: $after) { ${ROOM_FIELDS} }
  }
`;

export const PAGE_SIZE = 50;

export interface RoomPageData {
  room: null | {
    __typename?: 'Room';
    id: string;
    name: string;
    messageCount: number;
    messages: {
      __typename?: 'MessageConnection';
      nodes: Message[];
      resumeCursor: string;
    };
  };
}

/**
 * A room page: the latest messages, and the cursor the live events go on
 * from. messages' resumeCursor is the room's log position when the page was
 * read (set even when the room has no message, where pageInfo.endCursor,
 * which the page does not ask for since it does not page back, is null):
 * roomEvents(after: resumeCursor) replays every change of the room since
 * (with each message as it is now), on any replica (one that is behind
 * waits until it has reached that position), then goes on live.
 */
export const ROOM_PAGE: TypedDocumentNode<RoomPageData, { roomId: string }> = gql`
  query RoomPage($roomId: ID!) {
    room(id: $roomId) {
      id
      name
      messageCount
      messages(last: ${PAGE_SIZE}) {
        nodes { ${MESSAGE_FIELDS} }
        resumeCursor
      }
    }
  }
`;

export type RoomEventKind = 'MESSAGE_POSTED' | 'MESSAGE_EDITED' | 'MESSAGE_DELETED' | 'REACTIONS_CHANGED';
export interface RoomEvent {
  kind: RoomEventKind;
  cursor: string;
  message: Message;
  room: { __typename?: 'Room'; id: string; messageCount: number; lastMessageAt: string | null };
}

export const ROOM_EVENTS: TypedDocumentNode<{ roomEvents: RoomEvent }, { roomId: string; after?: string | null }> = gql`
  subscription RoomEvents($roomId: ID!, $after: String) {
    roomEvents(roomId: $roomId, after: $after) {
      kind
      cursor
      message { ${MESSAGE_FIELDS} }
      room { id messageCount lastMessageAt }
    }
  }
`;

export type PresenceKind = 'SNAPSHOT' | 'JOINED' | 'LEFT' | 'TYPING';
/**
 * Who is in a room. Every event carries the room as it is after it (users,
 * typing, count), so a page shows the last event's and never adds events
 * up: a SNAPSHOT (the first event, after a burst of changes, and the first
 * after every reconnect) replaces whatever was shown.
 */
export interface PresenceEvent {
  __typename?: 'PresenceEvent';
  kind: PresenceKind;
  user: User | null;
  count: number;
  users: User[];
  typing: User[];
}

/**
 * roomPresence takes no cursor (there is nothing to resume: a new
 * subscription starts with a SNAPSHOT), so it is sent with the context
 * below, which tells lib/herald-transport.ts not to add `after`.
 */
export const ROOM_PRESENCE: TypedDocumentNode<{ roomPresence: PresenceEvent }, { roomId: string }> = gql`
  subscription RoomPresence($roomId: ID!) {
    roomPresence(roomId: $roomId) {
      kind
      user { id name }
      count
      users { id name }
      typing { id name }
    }
  }
`;

/** Shows the viewer typing to the room's roomPresence subscribers for 5 s. */
export const SET_TYPING: TypedDocumentNode<{ setTyping: boolean }, { roomId: string }> = gql`
  mutation SetTyping($roomId: ID!) {
    setTyping(roomId: $roomId)
  }
`;

export const CREATE_ROOM: TypedDocumentNode<{ createRoom: RoomSummary }, { name: string }> = gql`
  mutation CreateRoom($name: String!) {
    createRoom(name: $name) { ${ROOM_FIELDS} }
  }
`;

export const POST_MESSAGE: TypedDocumentNode<{ postMessage: Message }, { roomId: string; text: string; key: string }> = gql`
  mutation PostMessage($roomId: ID!, $text: String!, $key: String) {
    postMessage(roomId: $roomId, text: $text, idempotencyKey: $key) { ${MESSAGE_FIELDS} }
  }
`;

export const EDIT_MESSAGE: TypedDocumentNode<{ editMessage: Message }, { id: string; version: number; text: string }> = gql`
  mutation EditMessage($id: ID!, $version: Int!, $text: String!) {
    editMessage(id: $id, version: $version, text: $text) { ${MESSAGE_FIELDS} }
  }
`;

export const DELETE_MESSAGE: TypedDocumentNode<{ deleteMessage: Message }, { id: string; version: number }> = gql`
  mutation DeleteMessage($id: ID!, $version: Int!) {
    deleteMessage(id: $id, version: $version) { ${MESSAGE_FIELDS} }
  }
`;

// Fragments for the room page's own reads and writes of the cache (never sent
// to Herald; their text is the same wherever this module is evaluated).

/** A message as every operation selects it: what a mutation's answer is written with. */
export const MESSAGE_FRAGMENT: TypedDocumentNode<Message> = gql`
  fragment CachedMessage on Message { ${MESSAGE_FIELDS} }
`;

/** What a room event says of its room (its list's counts). */
export const ROOM_COUNTS_FRAGMENT: TypedDocumentNode<RoomEvent['room']> = gql`
  fragment CachedRoomCounts on Room { id messageCount lastMessageAt }
`;

export const REACT: TypedDocumentNode<{ react: Message }, { messageId: string; emoji: string }> = gql`
  mutation React($messageId: ID!, $emoji: String!) {
    react(messageId: $messageId, emoji: $emoji) { ${MESSAGE_FIELDS} }
  }
`;
