export {
  backoff,
  createHeraldClient,
  type CursorExpiredHandler,
  type HeraldClient,
  type HeraldClientOptions,
  type HeraldRequest,
  type Result,
  type SubscribeOptions,
  type Token,
  type Unsubscribe,
} from './client.js';
export { prepareOperation, RESUME_ARGUMENT, type PreparedOperation } from './document.js';
