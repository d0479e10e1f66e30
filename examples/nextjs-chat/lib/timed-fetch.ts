// A time limit on each of the server render's requests to Herald.

/**
 * How long the server render waits for one answer of Herald (its headers and
 * its body). A Herald that accepts the connection but never answers
 * (overloaded, stuck behind a proxy, a replica hung on NATS) would otherwise
 * hold every page request open, with not even its headers sent, for as long
 * as Node's fetch waits for headers (300 s).
 */
export const HERALD_TIMEOUT_MS = 10_000;

/**
 * fetch, with each request aborted after ms (its signal, if it has one, still
 * aborts it too); a request that runs out of time fails with an error that
 * says so.
 */
export function fetchWithTimeout(ms: number, base: typeof fetch = (...args) => fetch(...args)): typeof fetch {
  return async (input, init) => {
    const timeout = AbortSignal.timeout(ms);
    const signal = init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout;
    try {
      return await base(input, { ...init, signal });
    } catch (err) {
      if (timeout.aborted && !init?.signal?.aborted) {
        throw new Error(`Herald did not answer within ${ms / 1000} s`, { cause: err });
      }
      throw err;
    }
  };
}
