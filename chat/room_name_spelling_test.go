package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"golang.org/x/text/unicode/norm"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/pubsub"
)

// Public room names are unique ignoring case, and the proposer refuses names
// that would "pass for" a taken one ("general\u200b" for "general"). The
// same name in Unicode's two canonically equivalent spellings (precomposed
// "é", U+00E9, as most keyboards type it; decomposed "e\u0301", as macOS file
// names and some input methods give it) is one name, stored in NFC (it was
// two public rooms that look exactly alike in every client).
func TestCanonicallyEquivalentRoomNamesAreOne(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nfc, nfd := "Café", "Cafe\u0301" // one name, two encodings
	first, err := svc.CreateRoom(ctx, alice, nfd)
	if err != nil {
		t.Fatal(err)
	}
	if first.Name != nfc {
		t.Errorf("room created as %q is named %q, want its NFC form %q", nfd, first.Name, nfc)
	}
	second, err := svc.CreateRoom(ctx, bob, nfc)
	if err == nil {
		t.Errorf("%q (%s) and %q (%s) are two public rooms of one name (canonically equivalent spellings)",
			first.Name, first.ID, second.Name, second.ID)
	}
}

// PostMessage's de-duplication ID is one per (author, room, key). It is sent
// as the Nats-Msg-Id header, whose line breaks nats.go writes as spaces
// (http.Header.Write), so two actors whose IDs differ only there ("a\nb",
// "a b": same length) must not share one: the second user's post with the
// same key and text was taken for a retry of the first user's. chat does not
// refuse such actor IDs (checkActor only wants one); auth's authenticators
// do, but chat.Service is the engine's API and the Actor any authenticator
// returns flows there.
func TestPostDedupIDKeepsActorsApart(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	room := mustRoom(t, svc, "dedup")
	a := Actor{ID: "a\nb", Name: "A"}
	b := Actor{ID: "a b", Name: "B"}
	ma, errA := svc.PostMessage(ctx, a, room.ID, "hello", "k1")
	mb, errB := svc.PostMessage(ctx, b, room.ID, "hello", "k1")
	switch {
	case errA != nil && errB != nil:
		t.Fatalf("both refused: %v / %v", errA, errB)
	case errA == nil && errB == nil && ma.ID == mb.ID:
		t.Errorf("actor %q's post was taken for a retry of actor %q's: answered with message %s by %q",
			b.ID, a.ID, mb.ID, mb.Author.ID)
	}
}

// TestRoomNameLengthAsSentOrInNFC: a name may be MaxRoomNameLength
// characters as sent or in NFC, whichever is fewer. A character whose
// canonical decomposition is four code points (U+1FAF, ᾯ, as macOS may
// send it decomposed) is four as sent and one in NFC: 100 of them are a
// name of 100; a name of 76 or more was refused as "longer than 100
// characters" before NFC.
func TestRoomNameLengthAsSentOrInNFC(t *testing.T) {
	omega := norm.NFD.String("\u1faf") // four code points
	nukta := "\u095c"                  // one code point, two in NFC
	tests := []struct {
		name   string
		sent   string
		wantOK bool
	}{
		{"80 decomposed", strings.Repeat(omega, 80), true},
		{"100 decomposed", strings.Repeat(omega, 100), true},
		{"101 decomposed", strings.Repeat(omega, 101), false},
		{"100 precomposed", strings.Repeat("\u1faf", 100), true},
		{"101 precomposed", strings.Repeat("\u1faf", 101), false},
		{"100 lengthened by NFC", strings.Repeat(nukta, 100), true},
		{"101 lengthened by NFC", strings.Repeat(nukta, 101), false},
		{"401 combining marks", "a" + strings.Repeat("\u0301", 400), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, err := checkProposedName(tt.sent)
			switch {
			case tt.wantOK && err != nil:
				t.Fatalf("a name of %d characters as sent, %d in NFC, refused: %s %q", utf8.RuneCountInString(tt.sent),
					utf8.RuneCountInString(norm.NFC.String(tt.sent)), err.Code, err.Message)
			case tt.wantOK && name != norm.NFC.String(tt.sent):
				t.Fatalf("stored as %+q, want its NFC form", name)
			case !tt.wantOK && (err == nil || err.Code != CodeBadUserInput || !strings.Contains(err.Message, "longer than 100 characters")):
				t.Fatalf("a name of %d characters as sent, %d in NFC = %q, %v; want BAD_USER_INPUT, longer than 100 characters",
					utf8.RuneCountInString(tt.sent), utf8.RuneCountInString(norm.NFC.String(tt.sent)), name, err)
			}
		})
	}
}

// The case pairs whose upper case has no precomposed letter: the lower
// case is one code point in NFC (ẗ, U+1E97), the upper case a letter and a
// combining mark (T, U+0308), which no NFC composes. Folded, the upper case
// is "t\u0308", whose NFC is the lower case's "ẗ": the same name ignoring
// case, which lowering each code point of the NFC form leaves apart.
var foldComposingPairs = []struct{ name, lower, upper string }{
	{"t with diaeresis", "ẗ chat", "T\u0308 CHAT"},
	{"j with caron", "ǰ chat", "J\u030C CHAT"},
	{"w with ring above", "ẘ chat", "W\u030A CHAT"},
	{"y with ring above", "ẙ chat", "Y\u030A CHAT"},
	{"h with line below", "ẖ chat", "H\u0331 CHAT"},
}

// TestRoomNamesEqualIgnoringCaseAfterComposition: on one replica, the
// second spelling of a taken public name, ignoring case, is refused.
func TestRoomNamesEqualIgnoringCaseAfterComposition(t *testing.T) {
	svc := startService(t, openLog(t, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tt := range foldComposingPairs {
		t.Run(tt.name, func(t *testing.T) {
			for _, order := range [][2]string{{tt.lower, tt.upper}, {tt.upper + " 2", tt.lower + " 2"}} {
				first, err := svc.CreateRoom(ctx, alice, order[0])
				if err != nil {
					t.Fatalf("create %q: %v", order[0], err)
				}
				second, err := svc.CreateRoom(ctx, bob, order[1])
				if err == nil {
					t.Errorf("%q (%s) and %q (%s) are two public rooms whose names are one ignoring case", first.Name, first.ID, second.Name, second.ID)
					continue
				}
				wantCode(t, err, CodeConflict)
			}
		})
	}
}

// TestRoomNamesEqualIgnoringCaseRace: two replicas creating the two
// spellings at once: the log's key keeps them one, so exactly one wins.
func TestRoomNamesEqualIgnoringCaseRace(t *testing.T) {
	first := openLog(t, pubsub.Options{})
	a := startService(t, first, Options{})
	b := startService(t, openReplicaLog(t, first, pubsub.Options{}), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tt := range foldComposingPairs {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, c := range []struct {
			svc  *Service
			name string
		}{{a, tt.lower}, {b, tt.upper}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.svc.CreateRoom(ctx, alice, c.name)
			}()
		}
		wg.Wait()
		if errs[0] == nil && errs[1] == nil {
			t.Errorf("%s: both %q and %q were created", tt.name, tt.lower, tt.upper)
		}
	}
}

// TestRoomStoredUnderUncomposedKeyLoads: a public room stored before
// under the key its folded name had without NFC still loads, and blocks
// its name in either case.
func TestRoomStoredUnderUncomposedKeyLoads(t *testing.T) {
	d := newDirectory()
	e := Event{Type: RoomCreated, Actor: alice, RoomID: "rold", Name: "T\u0308 CHAT"}
	data, err := e.Encode()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(roomNameKey(e.Name))) // the key before NFC after folding
	if r, bad := d.apply(1, hex.EncodeToString(sum[:]), data, t0(1)); bad != nil || r.ID != "rold" {
		t.Fatalf("room stored under its former key: %+v, %v", r, bad)
	}
	for _, name := range []string{"T\u0308 CHAT", "ẗ chat", "t\u0308 chat"} {
		if id := d.names[nameTakenKey(name)]; id != "rold" {
			t.Errorf("%q is not taken by the room stored as %q", name, e.Name)
		}
	}
}
