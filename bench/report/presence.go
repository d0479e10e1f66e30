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
	Messages             int64
	PerClientPerSecond   float64
	BusiestPerSecond     float64
	Kinds                map[string]int64
	ServerCPUSeconds     float64
	ServerCPUUtilisation float64
	ServerRSSKB          int64
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

// changesPerRoomPerSecond is how many presence changes each room saw: a
// rejoin is a leave and a join.
func (r *s8) changesPerRoomPerSecond() float64 {
	if r.Rooms == 0 || r.Seconds == 0 {
		return 0
	}
	return float64(2*r.Rejoins) / float64(r.Rooms) / r.Seconds
}

// renderS8 writes the S8 section, if S8 ran.
func renderS8(w func(string, ...any), r *s8) {
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
}
