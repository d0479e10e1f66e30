package main

// S8 (issue 16, point 4) runs Herald alone: bench/presence's report of
// clients present in rooms, leaving and coming back.
//
//	S8-herald.json   bench/presence --json

// s8 is bench/presence's report (its Report type).
type s8 struct {
	Clients, Rooms       int
	Seconds              float64
	Rejoins              int64
	Leaves               int64
	Messages             int64
	PerClientPerSecond   float64
	BusiestPerSecond     float64
	Kinds                map[string]int64
	ServerCPUSeconds     float64
	ServerCPUUtilisation float64
	ServerRSSKB          int64
	Ended                int64 // clients the server cut off: the run failed
}

// loadS8 reads S8's result in dir; nil when S8 did not run.
func loadS8(dir string) (*s8, error) {
	var r s8
	ok, err := readJSON(dir, "S8-herald.json", &r)
	if !ok || err != nil {
		return nil, err
	}
	return &r, nil
}

// changesPerRoomPerSecond is how many presence changes each room saw: its
// clients' leaves and their rejoins. A client's last leave may come too
// late to be followed by a rejoin, so leaves outnumber rejoins; a result
// without leaves (older bench/presence) counts a leave per rejoin.
func (r *s8) changesPerRoomPerSecond() float64 {
	if r.Rooms == 0 || r.Seconds == 0 {
		return 0
	}
	leaves := r.Leaves
	if leaves == 0 {
		leaves = r.Rejoins
	}
	return float64(leaves+r.Rejoins) / float64(r.Rooms) / r.Seconds
}

// renderS8 writes the S8 section, if S8 ran, with S4's Herald run (nil
// when S4 did not run) beside it: S4's subscribers get each of their
// room's 4 events a second, so its CPU is what messages of that rate to
// 5,000 clients cost.
func renderS8(w func(string, ...any), r *s8, s4 *result) {
	if r == nil {
		return
	}
	w("## S8 — presence: %d clients in %d rooms, each leaving its room and coming back (`bench/presence`)\n\n", r.Clients, r.Rooms)
	w("Each client is present in its room through `roomPresence` and hears everyone else come and go. Unbatched,\n")
	w("a client would get one message per change in its room; Herald sends at most one batch per 250 ms\n")
	w("window per room (a `SNAPSHOT` after a rejoin or more than 20 changes).\n\n")
	w("| seconds | rejoins | changes per room per s | presence messages per client per s | busiest client per s | server CPU s/s | server RSS MB |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|\n")
	w("| %.0f | %d | %.1f | %.2f | %.2f | %.2f | %.0f |\n\n", r.Seconds, r.Rejoins, r.changesPerRoomPerSecond(),
		r.PerClientPerSecond, r.BusiestPerSecond, r.ServerCPUUtilisation, mb(r.ServerRSSKB))
	w("Messages by kind: SNAPSHOT %d, JOINED %d, LEFT %d, TYPING %d.\n\n",
		r.Kinds["SNAPSHOT"], r.Kinds["JOINED"], r.Kinds["LEFT"], r.Kinds["TYPING"])
	if r.Ended > 0 {
		w("**The run failed:** the server cut off %d of the %d clients (a socket closed or a presence ended), so the rates above are over fewer clients than they divide by.\n\n", r.Ended, r.Clients)
	}
	if s4 != nil && s4.deliveries() > 0 && s4.cpuPer1k() > 0 {
		w("Beside S4 (5,000 subscribers in 50 rooms, 200 events/s, median run): %.2f messages per client per second\n", s4.deliveries()/5000)
		w("at %.2f server CPU s/s (%.4f CPU-s per 1,000 deliveries × %.0f deliveries/s). S8's presence messages\n",
			s4.cpuPer1k()*s4.deliveries()/1000, s4.cpuPer1k(), s4.deliveries())
		w("are fewer per client, but each lists the room's users, and S8's clients churn.\n\n")
	}
}
