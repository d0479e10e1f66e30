package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// A public room's directory key was the hex SHA-256 of its name in lower
// case until keys were case-folded. The 22 runes whose key changed (ς, ſ,
// µ, ϑ, ...) are in ordinary names: every Greek word ends in ς. A room
// stored under the old key must survive the upgrade (it was refused on
// replay: gone from the directory, its messages unreachable, its name free
// to be taken again).
func TestRoomsUnderLowerCaseKeysSurviveUpgrade(t *testing.T) {
	log := openLog(t, pubsub.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	oldKey := func(name string) string { // the previous version's directoryKey
		sum := sha256.Sum256([]byte(strings.ToLower(name)))
		return hex.EncodeToString(sum[:])
	}
	names := []string{"general", "Καλημέρα κόσμος", "µservices", "Straße der Straſſe"}
	ids := make([]string, len(names))
	for i, name := range names {
		ids[i] = newRoomID()
		e := Event{Format: eventFormat, Type: RoomCreated, Actor: alice, RoomID: ids[i], Name: name}
		data, err := e.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.AddToDirectory(ctx, oldKey(name), data); err != nil {
			t.Fatalf("store %q as the previous version did: %v", name, err)
		}
	}

	svc := startService(t, log, Options{}) // the upgraded replica
	waitFor(t, "the control room", func() bool { _, ok := svc.RoomInfo(ids[0]); return ok })
	for i, name := range names {
		if _, ok := svc.RoomInfo(ids[i]); !ok {
			t.Errorf("room %q (%s), created before the upgrade, is gone after it", name, ids[i])
			if _, err := svc.CreateRoom(ctx, bob, name); err == nil {
				t.Errorf("and its name %q could be taken again by another room", name)
			}
		}
	}
}

// Migrate replays the old log with the rules every old replica applied and
// copies what they accepted. Old replicas kept names unique in lower case,
// so "ΟΔΟΣ" and "οδος" (final sigma) were two rooms they both accepted; the
// copy keeps both, and the second one's messages (it judged names by the
// case-folded key, and skipped the second room and all it held).
func TestMigrationKeepsRoomsOneOnlyUnderFolding(t *testing.T) {
	entries := []legacyEntry{
		legacyCreated("rupper", "ΟΔΟΣ"),
		legacyCreated("rlower", "οδος"),
		legacyOf(posted(bob, "rlower", "rlower_m1", "γεια")),
	}
	dir := t.TempDir()
	first := openLog(t, pubsub.Options{DataDir: dir})
	writeLegacyLog(t, first, entries)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	log := openLog(t, pubsub.Options{DataDir: dir})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	report, err := Migrate(ctx, log, quiet)
	if err != nil {
		t.Fatalf("migrate: %v (report %+v)", err, report)
	}
	if report.Rooms != 2 || report.Events != 1 {
		t.Errorf("report = %+v: old replicas accepted 2 rooms and 1 event", report)
	}
	svc := startService(t, log, Options{})
	if _, ok := svc.RoomInfo("rlower"); !ok {
		t.Errorf("room %q (rlower), which every old replica accepted, is gone after the migration", "οδος")
	}
}
