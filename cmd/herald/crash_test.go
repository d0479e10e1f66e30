package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// crashWorkerLog is what one user's mutations were answered before the
// crash; unknown is the mutation the crash cut off (no answer).
type crashWorkerLog struct {
	user    string
	posts   []crashPost       // acknowledged posts, in order
	version map[string]int    // message → last acknowledged version
	text    map[string]string // message → last acknowledged text
	reacted map[string]bool   // message → last acknowledged reaction state
	unknown string            // the message (or "post:<text>") of the mutation cut off
	errs    []string          // answers that were errors
}

type crashPost struct {
	id, text, key string
}

// crashBurst runs users posting (every other post with an idempotency
// key), editing and reacting in room on addr, one mutation at a time per
// user, until the server stops answering or each has run max mutations;
// kill is called once total acknowledged mutations reach killAt.
func crashBurst(t *testing.T, addr, room string, users []string, max, killAt int, kill func()) []*crashWorkerLog {
	var acked atomic.Int64
	var once sync.Once
	logs := make([]*crashWorkerLog, len(users))
	var wg sync.WaitGroup
	for w, user := range users {
		l := &crashWorkerLog{user: user, version: map[string]int{}, text: map[string]string{}, reacted: map[string]bool{}}
		logs[w] = l
		wg.Add(1)
		go func() {
			defer wg.Done()
			ack := func() {
				if int(acked.Add(1)) >= killAt {
					once.Do(kill)
				}
			}
			var last string
			for i := 0; i < max; i++ {
				switch i % 3 {
				case 0: // post
					text := fmt.Sprintf("%s-%03d", user, i)
					vars := map[string]any{"r": room, "t": text}
					key := ""
					if i%2 == 0 {
						key = "k-" + text
						vars["k"] = key
					}
					l.unknown = "post:" + text
					r, err := crashGQL(addr, user, `mutation($r: ID!, $t: String!, $k: String) { postMessage(roomId: $r, text: $t, idempotencyKey: $k) { id version text } }`, vars)
					if err != nil {
						return
					}
					var out struct{ PostMessage struct{ ID, Text string } }
					if len(r.Errors) > 0 || decodeInto(r, &out) != nil {
						l.errs = append(l.errs, fmt.Sprintf("post %s: %+v", text, r.Errors))
						l.unknown = ""
						continue
					}
					last = out.PostMessage.ID
					l.posts = append(l.posts, crashPost{id: last, text: text, key: key})
					l.version[last], l.text[last] = 1, text
					l.unknown = ""
					ack()
				case 1: // edit the last post
					if last == "" {
						continue
					}
					text := fmt.Sprintf("%s-%03d-edited", user, i)
					l.unknown = last
					r, err := crashGQL(addr, user, `mutation($id: ID!, $v: Int!, $t: String!) { editMessage(id: $id, version: $v, text: $t) { id version text } }`,
						map[string]any{"id": last, "v": l.version[last], "t": text})
					if err != nil {
						return
					}
					var out struct{ EditMessage struct{ Version int } }
					if len(r.Errors) > 0 || decodeInto(r, &out) != nil {
						l.errs = append(l.errs, fmt.Sprintf("edit %s: %+v", last, r.Errors))
						l.unknown = ""
						continue
					}
					l.version[last], l.text[last] = out.EditMessage.Version, text
					l.unknown = ""
					ack()
				case 2: // react to the last post
					if last == "" {
						continue
					}
					l.unknown = last
					r, err := crashGQL(addr, user, `mutation($id: ID!) { react(messageId: $id, emoji: "👍") { id } }`, map[string]any{"id": last})
					if err != nil {
						return
					}
					if len(r.Errors) > 0 {
						l.errs = append(l.errs, fmt.Sprintf("react %s: %+v", last, r.Errors))
						l.unknown = ""
						continue
					}
					l.reacted[last] = !l.reacted[last]
					l.unknown = ""
					ack()
				}
			}
		}()
	}
	wg.Wait()
	return logs
}

// crashNode is a message as the restarted replica reads it.
type crashNode struct {
	ID, Text  string
	Version   int
	Deleted   bool
	Author    struct{ ID string }
	Reactions []struct {
		Emoji string
		Count int
	}
}

// crashRoomState reads every message of room (at most 100) as user.
func crashRoomState(t *testing.T, addr, user, room string) (nodes []crashNode, count int) {
	t.Helper()
	var out struct {
		Room struct {
			MessageCount int
			Messages     struct{ Nodes []crashNode }
		}
	}
	gql(t, addr, user, `query($r: ID!) { room(id: $r) { messageCount messages(first: 100) { nodes { id text version deleted author { id } reactions { emoji count } } } } }`,
		map[string]any{"r": room}, &out)
	return out.Room.Messages.Nodes, out.Room.MessageCount
}

// checkCrashState checks that every acknowledged mutation of logs is in
// nodes exactly once and in order, and that nothing else is there but
// what the mutation cut off may have stored.
func checkCrashState(t *testing.T, nodes []crashNode, logs []*crashWorkerLog) {
	t.Helper()
	pos := map[string]int{}
	for i, n := range nodes {
		if _, dup := pos[n.ID]; dup {
			t.Errorf("message %s listed twice", n.ID)
		}
		pos[n.ID] = i
	}
	byAuthor := map[string][]crashNode{}
	for _, n := range nodes {
		byAuthor[n.Author.ID] = append(byAuthor[n.Author.ID], n)
	}
	for _, l := range logs {
		prev := -1
		acked := map[string]bool{}
		for _, p := range l.posts {
			acked[p.id] = true
			i, ok := pos[p.id]
			if !ok {
				t.Errorf("%s: acknowledged post %s (%q) lost after the crash", l.user, p.id, p.text)
				continue
			}
			if i <= prev {
				t.Errorf("%s: acknowledged post %s (%q) out of order", l.user, p.id, p.text)
			}
			prev = i
			n := nodes[i]
			want, wantText := l.version[p.id], l.text[p.id]
			if l.unknown == p.id {
				if n.Version != want && n.Version != want+1 {
					t.Errorf("%s: message %s at version %d, want %d or %d (a mutation was cut off)", l.user, p.id, n.Version, want, want+1)
				}
				continue
			}
			if n.Version != want || n.Text != wantText {
				t.Errorf("%s: message %s is version %d %q, want the acknowledged version %d %q", l.user, p.id, n.Version, n.Text, want, wantText)
			}
			reacted := len(n.Reactions) == 1 && n.Reactions[0].Emoji == "👍" && n.Reactions[0].Count == 1
			if reacted != l.reacted[p.id] || len(n.Reactions) > 1 {
				t.Errorf("%s: message %s has reactions %+v, want reacted=%v", l.user, p.id, n.Reactions, l.reacted[p.id])
			}
		}
		for _, n := range byAuthor[l.user] {
			if acked[n.ID] {
				continue
			}
			if l.unknown != "post:"+n.Text {
				t.Errorf("%s: message %s (%q) is stored but was never acknowledged, nor cut off (cut off: %q)", l.user, n.ID, n.Text, l.unknown)
			}
		}
		for _, e := range l.errs {
			t.Errorf("%s: mutation refused before the crash: %s", l.user, e)
		}
	}
}

// TestSIGKILLDuringMutationsKeepsWhatWasAcknowledged kills Herald with SIGKILL in the middle of a
// burst of posts (with and without idempotency keys), edits, reactions
// and member changes, and restarts it on the same data dir: it must start
// cleanly and hold every acknowledged mutation once and in order; the
// idempotency keys used before the crash still de-duplicate; cursors
// handed out before the crash still resume with nothing lost or
// duplicated; names and members are as before.
func TestSIGKILLDuringMutationsKeepsWhatWasAcknowledged(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", dir, "--mutation-rate", "0", "--drain-timeout", "0s"}
	a := startProcess(t, "herald A", args...)

	room := createRoom(t, a.addr, "alice", "crash-burst")
	var priv struct{ CreateRoom roomData }
	gql(t, a.addr, "alice", `mutation { createRoom(name: "crash-private", private: true) { id } }`, nil, &priv)
	privRoom := priv.CreateRoom.ID
	var rc struct {
		Room struct{ Messages struct{ ResumeCursor string } }
	}
	gql(t, a.addr, "", `query($r: ID!) { room(id: $r) { messages(last: 1) { resumeCursor } } }`, map[string]any{"r": room}, &rc)
	start := rc.Room.Messages.ResumeCursor
	if start == "" {
		t.Fatal("no resumeCursor for the empty room")
	}

	// A subscriber that records every event before the crash. It resumes
	// after the empty room's cursor, so that the first post reaches it
	// even if it comes before the subscription has joined (on a loaded
	// machine it did, and the post was never seen).
	sub := subscribeRoomEvents(t, a.addr, "watcher", room, start)
	first := postMessage(t, a.addr, "alice", room, "before the burst")
	if typ, ev, err := sub.next(10 * time.Second); err != nil || ev == nil || ev.ID != first.ID {
		t.Fatalf("first event: %s %+v %v", typ, ev, err)
	}
	var seen []crashEvent
	seenDone := make(chan struct{})
	go func() {
		defer close(seenDone)
		evs, _ := sub.collect(15*time.Second, 30*time.Second, 1000)
		seen = evs
	}()

	// Members: alice adds m0, m1, ... and removes every other one, in
	// the private room, alongside the burst.
	members := map[string]bool{"alice": true}
	memberUnknown := ""
	var memberErrs []string
	membersDone := make(chan struct{})
	go func() {
		defer close(membersDone)
		for i := 0; i < 60; i++ {
			user := fmt.Sprintf("m%02d", i/2)
			q := `mutation($r: ID!, $u: ID!) { addMember(roomId: $r, userId: $u) { id } }`
			if i%4 == 1 {
				q = `mutation($r: ID!, $u: ID!) { removeMember(roomId: $r, userId: $u) { id } }`
			} else if i%2 == 1 {
				continue
			}
			memberUnknown = user
			r, err := crashGQL(a.addr, "alice", q, map[string]any{"r": privRoom, "u": user})
			if err != nil {
				return
			}
			memberUnknown = ""
			if len(r.Errors) > 0 {
				memberErrs = append(memberErrs, fmt.Sprintf("%s: %+v", user, r.Errors))
				continue
			}
			members[user] = i%4 != 1
		}
	}()

	killed := make(chan struct{})
	logs := crashBurst(t, a.addr, room, []string{"u0", "u1", "u2"}, 90, 60, func() {
		_ = a.cmd.Process.Kill()
		close(killed)
	})
	select {
	case <-killed:
	case <-time.After(time.Second):
		t.Fatal("the burst ended before the kill")
	}
	<-membersDone
	select {
	case err := <-a.done:
		a.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("herald A did not die")
	}
	<-seenDone
	for _, e := range memberErrs {
		t.Errorf("member change refused before the crash: %s", e)
	}

	// Restart on the same data dir.
	began := time.Now()
	b := startProcess(t, "herald B", args...)
	t.Logf("ready %s after the restart; %d events seen before the crash", time.Since(began).Round(time.Millisecond), len(seen))

	nodes, count := crashRoomState(t, b.addr, "watcher", room)
	if len(nodes) > 0 && nodes[0].ID == first.ID {
		nodes = nodes[1:]
	} else {
		t.Errorf("the first post is not first: %+v", nodes)
	}
	if count != len(nodes)+1 {
		t.Errorf("messageCount %d, want %d", count, len(nodes)+1)
	}
	checkCrashState(t, nodes, logs)

	// Names: both rooms are there under their names.
	var names struct {
		Rooms struct{ Nodes []struct{ ID, Name string } }
	}
	gql(t, b.addr, "alice", `{ rooms(first: 100) { nodes { id name } } }`, nil, &names)
	got := map[string]string{}
	for _, n := range names.Rooms.Nodes {
		got[n.ID] = n.Name
	}
	if got[room] != "crash-burst" || got[privRoom] != "crash-private" || len(got) != 2 {
		t.Errorf("rooms after the restart: %v", got)
	}
	if r := gql(t, b.addr, "bob", `mutation { createRoom(name: "CRASH-BURST") { id } }`, nil, nil); r.code() != "CONFLICT" {
		t.Errorf("a taken name after the restart: %+v, want CONFLICT", r.Errors)
	}

	// Members.
	var mem struct {
		Room struct {
			Members struct{ Nodes []struct{ ID string } }
		}
	}
	gql(t, b.addr, "alice", `query($r: ID!) { room(id: $r) { members(first: 50) { nodes { id } } } }`, map[string]any{"r": privRoom}, &mem)
	gotMembers := map[string]bool{}
	for _, n := range mem.Room.Members.Nodes {
		gotMembers[n.ID] = true
	}
	for u, in := range members {
		if u != memberUnknown && gotMembers[u] != in {
			t.Errorf("member %s: present=%v after the restart, want %v", u, gotMembers[u], in)
		}
	}
	for u := range gotMembers {
		if _, known := members[u]; !known && u != memberUnknown {
			t.Errorf("member %s present after the restart, never added", u)
		}
	}

	// Cursors from before the crash resume with nothing lost or repeated:
	// from the empty room's resumeCursor, all of the room's events; from
	// an event seen before the crash, the same events after it.
	full := subscribeRoomEvents(t, b.addr, "watcher", room, start)
	all, err := full.collect(2*time.Second, 20*time.Second, 1000)
	if err != nil {
		t.Fatalf("resume from the empty room's cursor: %v", err)
	}
	cursors := map[string]int{}
	posted := map[string]int{}
	for i, e := range all {
		if j, dup := cursors[e.Cursor]; dup {
			t.Errorf("event %d repeats cursor of event %d: %v", i, j, e)
		}
		cursors[e.Cursor] = i
		if e.Kind == "MESSAGE_POSTED" {
			posted[e.ID]++
		}
	}
	for id, n := range posted {
		if n != 1 {
			t.Errorf("message %s posted %d times in the replay", id, n)
		}
	}
	if len(all) == 0 || all[0].ID != first.ID {
		t.Fatalf("replay from the empty room's cursor does not begin with the first post: %v", all)
	}
	// What the subscriber saw before the crash is the replay's prefix (a
	// replay shows each message as it is now: kinds, messages and cursors
	// are compared).
	seen = append([]crashEvent{{Kind: "MESSAGE_POSTED", ID: first.ID, Cursor: all[0].Cursor}}, seen...)
	for i, e := range seen {
		if i >= len(all) {
			t.Errorf("event %d seen before the crash (%v) is not in the replay after it", i, e)
			break
		}
		if e.Kind != all[i].Kind || e.ID != all[i].ID || e.Cursor != all[i].Cursor {
			t.Errorf("event %d: seen %v before the crash, replayed as %v", i, e, all[i])
			break
		}
	}
	if mid := len(seen) / 2; mid > 0 {
		c := seen[mid].Cursor
		resumed := subscribeRoomEvents(t, b.addr, "watcher", room, c)
		rest, err := resumed.collect(2*time.Second, 20*time.Second, 1000)
		if err != nil {
			t.Fatalf("resume from a cursor of before the crash: %v", err)
		}
		want := all[mid+1:]
		if len(rest) != len(want) {
			t.Errorf("resumed from event %d's cursor: %d events, want %d", mid, len(rest), len(want))
		}
		for i := range min(len(rest), len(want)) {
			if rest[i].Cursor != want[i].Cursor || rest[i].ID != want[i].ID {
				t.Errorf("resumed event %d: %v, want %v", i, rest[i], want[i])
				break
			}
		}
	}

	// Idempotency keys used before the crash still de-duplicate.
	for _, l := range logs {
		for _, p := range l.posts {
			if p.key == "" {
				continue
			}
			r, err := crashGQL(b.addr, l.user, `mutation($r: ID!, $t: String!, $k: String) { postMessage(roomId: $r, text: $t, idempotencyKey: $k) { id } }`,
				map[string]any{"r": room, "t": p.text, "k": p.key})
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ PostMessage struct{ ID string } }
			if len(r.Errors) > 0 || decodeInto(r, &out) != nil || out.PostMessage.ID != p.id {
				t.Errorf("%s: retry of %q with key %q after the restart: %s %+v, want the first post %s", l.user, p.text, p.key, r.Data, r.Errors, p.id)
			}
		}
	}
	after, _ := crashRoomState(t, b.addr, "watcher", room)
	if len(after) != len(nodes)+1 {
		t.Errorf("retries after the restart stored %d messages more", len(after)-len(nodes)-1)
	}
	b.stop(15 * time.Second)
}
