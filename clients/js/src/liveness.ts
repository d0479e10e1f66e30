// Dead-connection detection: a socket that has silently died (a NAT entry
// timed out, the Wi-Fi changed, a laptop slept) never gets a close event,
// or gets it minutes later, so the client would wait on it for ever and
// every subscription would stall. The watchdog notices the silence and has
// the socket closed, and the client reconnects and resumes.
//
// Why this design. graphql-ws's own recipe is keepAlive (the client pings
// every N ms) plus a deadline for the pong, closing with 4408. Herald
// already pings every socket itself (--ws-ping-interval, 15 s by default)
// and closes one that stays silent, so a client that also pinged on a
// fixed schedule would double the idle traffic every Herald replica
// handles (tens of thousands of sockets). Instead the watchdog listens:
// anything from the server (its pings, results, acks) proves the socket
// alive. Only after `pingInterval` ms with nothing heard does the client
// ping, as the protocol allows at any time and Herald answers with a pong
// on its cheap path (the exact frame `{"type":"ping"}`), and only if
// nothing at all has arrived `pongTimeout` ms after that ping is the socket
// given up on. With the defaults (20 s, longer than Herald's 15 s
// interval) a healthy idle socket to a default Herald never sends a ping:
// the detection costs the server nothing. Against a Herald configured to
// ping less often (or any other graphql-transport-ws server) the client's
// ping fills the gap, so a healthy socket is never closed because the
// server is quieter than expected: it is closed only when a ping of its
// own went unanswered.
//
// The socket is never given up on without such a ping having had its full
// `pongTimeout` to be answered, measured from when it was sent: a timer
// that fires late (a laptop waking, a throttled background tab) makes the
// client ask, not close. The clock is monotonic where there is one, so a
// wall-clock jump neither closes a socket nor postpones detection.
//
// One timer per client, rescheduled lazily: a message only records the
// time it arrived (the timer, when it fires, looks at how long ago that
// was), so a busy stream costs no timer churn; only the first frame after
// a ping of the client's reschedules it.

/** What the watchdog needs of a socket. */
export interface WatchedSocket {
  readonly readyState: number;
  send(data: string): void;
}

export interface Watchdog<S extends WatchedSocket> {
  /** Watches this socket (just created) instead of any other; the silence is counted from now. */
  watch(socket: S): void;
  /** Something arrived from the watched socket: it is alive. */
  heard(): void;
  /** Stops watching (only if it watches this socket, when one is named); clears the timer. */
  stop(socket?: S): void;
}

/** The ping the client sends, byte for byte the frame Herald answers without decoding JSON. */
export const PING_FRAME = '{"type":"ping"}';

const MAX_DELAY = 2 ** 31 - 1; // setTimeout's limit

const now: () => number = typeof globalThis.performance?.now === 'function'
  ? () => globalThis.performance.now()
  : () => Date.now();

/**
 * A watchdog that pings the watched socket once it has been silent for
 * pingInterval ms, and calls onDead with it once pongTimeout ms have
 * passed since that ping with nothing heard. A socket still opening (no
 * ping possible) is dead after the same pingInterval + pongTimeout.
 */
export function createWatchdog<S extends WatchedSocket>(
  pingInterval: number, pongTimeout: number, onDead: (socket: S) => void,
): Watchdog<S> {
  let socket: S | undefined;
  let lastHeard = 0;
  let pingedAt: number | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const schedule = (ms: number) => {
    timer = setTimeout(check, Math.min(Math.max(Math.ceil(ms), 1), MAX_DELAY));
  };

  const stop = (only?: S) => {
    if (only !== undefined && only !== socket) return;
    clearTimeout(timer);
    timer = undefined;
    socket = undefined;
  };

  function check() {
    timer = undefined;
    const watched = socket;
    if (!watched) return;
    const t = now();
    const silent = t - lastHeard;
    if (silent < pingInterval) return schedule(pingInterval - silent);
    if (pingedAt === null) {
      pingedAt = t;
      if (watched.readyState === 1) {
        try {
          watched.send(PING_FRAME);
        } catch {
          // a socket that cannot send is dead: its pong deadline runs as for any other
        }
      }
      return schedule(pongTimeout);
    }
    const waited = t - pingedAt;
    if (waited < pongTimeout) return schedule(pongTimeout - waited);
    stop();
    onDead(watched);
  }

  return {
    watch(s) {
      stop();
      socket = s;
      lastHeard = now();
      pingedAt = null;
      schedule(pingInterval);
    },
    heard() {
      lastHeard = now();
      if (pingedAt === null) return;
      // The answer to a ping (or anything after it): the next ping is due
      // pingInterval from now, not when the pong deadline would have been.
      pingedAt = null;
      if (socket) {
        clearTimeout(timer);
        schedule(pingInterval);
      }
    },
    stop,
  };
}
