// HeraldLink: Apollo Client 4's terminating link for Herald. Subscriptions
// go over a HeraldClient (a WebSocket that resumes from the last cursor);
// queries and mutations go over HTTP, through the HttpLink given or one made
// from its options, with the client's credentials as headers.
//
// A subscription forwarded again (Apollo Client's restart(), RetryLink after
// an error, any link that calls forward(operation) once more) is the same
// Operation object: it resumes after the last cursor it delivered, not from
// the `after` it was first given (a page's cursor), which would replay what
// the application already has.
import { ApolloLink, HttpLink } from '@apollo/client';
import { CombinedGraphQLErrors } from '@apollo/client/errors';
import type { GraphQLFormattedError } from 'graphql';
import { Observable, from, mergeMap } from 'rxjs';
import type { HeraldClient, Token, Unsubscribe } from './client.js';
import { prepareOperation } from './document.js';

export interface HeraldLinkOptions {
  /** The Herald client subscriptions go over. */
  client: HeraldClient;
  /** Queries and mutations go here: an HttpLink (or any terminating link), or HttpLink options. */
  http: ApolloLink | HttpLink.Options;
  /**
   * Add the client's credentials (`Authorization`, or `X-Herald-User` in dev
   * mode) to every HTTP operation's headers, unless the operation's context
   * already sets that header. Default true.
   */
  httpCredentials?: boolean;
}

/**
 * What an operation's context may tell HeraldLink:
 * `client.subscribe({ query, variables, context: { herald: { after: cursor } } })`
 * starts the subscription after that cursor (as passing it as the `after`
 * variable does); `context: { herald: { resume: false } }` sends the
 * subscription as it is, for one whose field takes no `after` (Herald's
 * `roomPresence`, which starts with a snapshot after every reconnect).
 */
export interface HeraldContext {
  herald?: { after?: Token; resume?: boolean };
}

function isLikeCloseEvent(val: unknown): val is { code: number; reason: string } {
  return typeof val === 'object' && val !== null && 'code' in val && 'reason' in val;
}

/**
 * A WebSocket's error event (a connect refused, once the retries are
 * spent). The `ws` package's has a `message`, so it must be told apart
 * before anything with a message is taken for a GraphQL error.
 */
function isLikeErrorEvent(val: unknown): boolean {
  if (typeof val !== 'object' || val === null) return false;
  const { type, target } = val as { type?: unknown; target?: { readyState?: unknown } };
  return type === 'error' || (typeof target === 'object' && target !== null && target.readyState === 3);
}

/** What graphql-ws reported, as the Error Apollo Client 4 expects (as GraphQLWsLink converts it). */
function toApolloError(err: unknown): Error {
  if (err instanceof Error) return err;
  if (isLikeCloseEvent(err)) return new Error(`Socket closed with event ${err.code} ${err.reason}`);
  if (isLikeErrorEvent(err)) {
    const message = (err as { message?: unknown }).message;
    return new Error(`Socket closed${typeof message === 'string' && message ? ` (${message})` : ''}`);
  }
  if (Array.isArray(err) || (typeof err === 'object' && err !== null && 'message' in err)) {
    return new CombinedGraphQLErrors({ errors: (Array.isArray(err) ? err : [err]) as GraphQLFormattedError[] });
  }
  return new Error(`Socket closed (${String((err as { type?: string })?.type ?? err)})`);
}

export class HeraldLink extends ApolloLink {
  readonly client: HeraldClient;
  readonly http: ApolloLink;
  private readonly httpCredentials: boolean;
  /**
   * Where each subscription forwarded here got to: the last cursor it
   * delivered (or started after), by Operation. A WeakMap: an operation
   * Apollo Client has let go of takes its cursor with it.
   */
  private readonly cursors = new WeakMap<ApolloLink.Operation, string>();
  /**
   * The credential headers this link put into each HTTP operation's
   * context. An operation forwarded again (RetryLink) still has them there:
   * they are not the operation's own, and the fresh ones replace them.
   */
  private readonly added = new WeakMap<ApolloLink.Operation, Record<string, string>>();

  constructor(options: HeraldLinkOptions) {
    super();
    this.client = options.client;
    this.http = options.http instanceof ApolloLink ? options.http : new HttpLink(options.http);
    this.httpCredentials = options.httpCredentials ?? true;
  }

  override request(operation: ApolloLink.Operation, forward: ApolloLink.ForwardFunction): Observable<ApolloLink.Result> {
    if (operation.operationType === 'subscription') return this.subscription(operation);
    if (!this.httpCredentials) return this.http.request(operation, forward);
    return from(this.client.httpHeaders()).pipe(mergeMap((headers) => {
      operation.setContext((ctx: Readonly<ApolloLink.OperationContext>) => {
        const before = this.added.get(operation) ?? {};
        const own = Object.fromEntries(Object.entries((ctx as { headers?: Record<string, string> }).headers ?? {})
          .filter(([k, v]) => before[k] !== v));
        const lower = new Set(Object.keys(own).map((k) => k.toLowerCase()));
        const added = Object.fromEntries(Object.entries(headers).filter(([k]) => !lower.has(k.toLowerCase())));
        this.added.set(operation, added);
        return { headers: { ...added, ...own } };
      });
      return this.http.request(operation, forward);
    }));
  }

  private subscription(operation: ApolloLink.Operation): Observable<ApolloLink.Result> {
    return new Observable<ApolloLink.Result>((observer) => {
      const { query, variables, operationName, extensions } = operation;
      const herald = (operation.getContext() as HeraldContext).herald;
      const resume = herald?.resume !== false;
      // Forwarded before: on after the cursor it got to, if it can take one
      // (a subscription whose root field takes `after`).
      const reached = resume ? this.cursors.get(operation) : undefined;
      const after = reached != null && prepareOperation(query, operationName).cursorVariable ? reached : herald?.after;
      let unsubscribe: Unsubscribe | undefined;
      // Before the result reaches Apollo Client, which may restart the
      // subscription (forward it again) while it handles it.
      const remember = () => {
        const cursor = unsubscribe?.cursor;
        if (resume && cursor != null) this.cursors.set(operation, cursor);
      };
      unsubscribe = this.client.subscribe(
        { query, variables, operationName, extensions },
        {
          next: (result) => { remember(); observer.next(result as ApolloLink.Result); },
          error: (err) => { remember(); observer.error(toApolloError(err)); },
          complete: () => { remember(); observer.complete(); },
        },
        { ...(after != null ? { after } : {}), ...(resume ? {} : { resume: false }) },
      );
      return () => {
        remember();
        unsubscribe?.();
      };
    });
  }
}
