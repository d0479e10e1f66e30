export {
  backoff,
  createHeraldClient,
  type CursorExpiredHandler,
  type HeraldClient,
  type HeraldClientOptions,
  type HeraldRequest,
  OutcomeUnknownError,
  type Result,
  type SubscribeOptions,
  type Token,
  type Unsubscribe,
} from './client.js';
export { operationKind, prepareOperation, RESUME_ARGUMENT, type OperationKind, type PreparedOperation } from './document.js';
// graphql-ws's types that the API above takes and returns (a sink, the
// client, its options and events), so that an app need not depend on
// graphql-ws itself to name them.
export type { Client, ClientOptions, Event, EventListener, Sink } from 'graphql-ws';
