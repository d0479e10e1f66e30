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
