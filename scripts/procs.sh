# Process helpers shared by the test drivers (e2e/run.sh,
# deploy/cluster-test/run.sh). Source it; the caller defines log().

# alive PID: the process exists and is not a zombie. (Cleanup may run inside
# a signal trap, where bash's wait can block forever: this never waits.)
alive() {
	local st
	st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
	[[ "$st" != Z* ]]
}

# stop_within SECONDS PID...: SIGTERM, then SIGKILL to whatever is still
# alive after SECONDS.
stop_within() {
	local grace=$1 p left
	shift
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 1 $((grace * 10))); do
		left=0
		for p in "$@"; do if alive "$p"; then left=1; fi; done
		[ "$left" = 0 ] && return 0
		sleep 0.1
	done
	for p in "$@"; do
		if alive "$p"; then
			log "process $p did not stop within ${grace}s of SIGTERM; killing it"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
}
