package chat

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// Benchmark S6 (docs/BENCHMARKS.md) queries a cold room of 10,000 messages
// on a fresh replica; its partition also holds the messages of other rooms,
// interleaved with the big room's as concurrent seeding stores them. These
// sizes model one partition of S6's 16: about 62,500 messages, of which
// the big room has 10,000.
const (
	coldRoomMessages  = 10_000
	coldOtherRooms    = 200
	coldOtherMessages = 40_000 // over the other rooms, interleaved with the big room's
	coldHistory       = 10_000 // herald's default --room-history
)

// coldLog is a log whose single partition holds a big room amid others.
type coldLog struct {
	log  *pubsub.Log
	room string // the big room's ID
}

// seedColdLog builds a coldLog: the big room is created through a Service
// (so the directory has it), its posts and the others' are appended
// directly, each with the Prev and expected sequence the Service would
// give them, on a few goroutines at once so that they interleave.
func seedColdLog(b *testing.B) coldLog {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log, err := pubsub.Open(ctx, pubsub.Options{
		DataDir: b.TempDir(), Partitions: 1, MaxMsgsPerSubject: coldHistory, Logger: quiet,
	})
	if err != nil {
		b.Fatalf("open event log: %v", err)
	}
	b.Cleanup(func() { _ = log.Close() })

	seeder := NewService(log, Options{History: coldHistory, Logger: quiet})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- seeder.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("seeding service: %v", err)
		}
	}()
	for ok, _ := seeder.Ready(); !ok; ok, _ = seeder.Ready() {
		time.Sleep(2 * time.Millisecond)
	}
	room, err := seeder.CreateRoom(ctx, Actor{ID: "seed-user", Name: "Seeder"}, "big")
	if err != nil {
		b.Fatalf("create the big room: %v", err)
	}

	// Each writer owns its rooms, so it knows their last sequences.
	const writers = 4
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	post := func(roomID string, last *uint64, n int) error {
		e := Event{
			Format: eventFormat, Type: MessagePosted, Actor: Actor{ID: "seed-user", Name: "Seeder"},
			RoomID: roomID, MessageID: newMessageID(roomID), Text: "seed " + roomID[:6] + " #" + strconv.Itoa(n), Prev: *last,
		}
		data, err := e.Encode()
		if err != nil {
			return err
		}
		res, err := log.AppendKeyed(ctx, roomID, e.rest(), data, pubsub.AppendOptions{ExpectLast: *last})
		if err != nil {
			return fmt.Errorf("append to room %s: %w", roomID, err)
		}
		*last = res.Seq
		return nil
	}
	wg.Go(func() {
		var last uint64
		for n := range coldRoomMessages {
			if err := post(room.ID, &last, n); err != nil {
				errs <- err
				return
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			rooms := make([]string, coldOtherRooms/writers)
			lasts := make([]uint64, len(rooms))
			for i := range rooms {
				rooms[i] = newRoomID()
			}
			for n := range coldOtherMessages / writers {
				i := n % len(rooms)
				if err := post(rooms[i], &lasts[i], n); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return coldLog{log: log, room: room.ID}
}

// reportCPU reports the CPU time the process used per op since start (the
// embedded NATS server's included): on a busy machine it varies less than
// the time per op.
func reportCPU(b *testing.B, start time.Duration) {
	if end, ok := processCPU(); ok && b.N > 0 {
		b.ReportMetric(float64(end-start)/float64(b.N)/1e6, "cpu-ms/op")
	}
}

// BenchmarkColdRoomLoad measures loading the big room cold, as S6's first
// query of a room does:
//
//   - service: Messages(last: 50) on a Service whose room budget evicts
//     the room as soon as the query releases it, so every query loads it;
//   - read: the log's part alone, ReadKey of the room's entries with a
//     callback that does nothing;
//   - fold: the domain's part alone, foldLogged of the room's entries
//     (read once, beforehand) into a fresh roomState;
//   - decode: decoding each of the room's entries, as loading does.
func BenchmarkColdRoomLoad(b *testing.B) {
	cl := seedColdLog(b)
	ctx := context.Background()

	b.Run("service", func(b *testing.B) {
		svc := NewService(cl.log, Options{History: coldHistory, RoomCache: 1, Logger: quiet})
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- svc.Run(runCtx) }()
		defer func() {
			stop()
			if err := <-done; err != nil {
				b.Errorf("Run: %v", err)
			}
		}()
		for ok, _ := svc.Ready(); !ok; ok, _ = svc.Ready() {
			time.Sleep(2 * time.Millisecond)
		}
		b.ReportAllocs()
		cpu, _ := processCPU()
		defer reportCPU(b, cpu)
		for b.Loop() {
			page, err := svc.Messages(ctx, cl.room, Window{Last: 50})
			if err != nil {
				b.Fatal(err)
			}
			if page.TotalCount != coldRoomMessages || len(page.Items) != 50 {
				b.Fatalf("got %d of %d messages", len(page.Items), page.TotalCount)
			}
		}
		if got := svc.Stats().Loads; got < uint64(b.N) {
			b.Fatalf("%d loads for %d queries: the room was not cold", got, b.N)
		}
	})

	b.Run("read", func(b *testing.B) {
		b.ReportAllocs()
		cpu, _ := processCPU()
		defer reportCPU(b, cpu)
		for b.Loop() {
			n := 0
			if _, err := cl.log.ReadKey(ctx, cl.room, 0, func(pubsub.Entry) error { n++; return nil }); err != nil {
				b.Fatal(err)
			}
			if n != coldRoomMessages {
				b.Fatalf("read %d entries", n)
			}
		}
	})

	var entries []pubsub.Entry
	if _, err := cl.log.ReadKey(ctx, cl.room, 0, func(e pubsub.Entry) error {
		entries = append(entries, e)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	svc := NewService(cl.log, Options{History: coldHistory, Logger: quiet})
	meta := Room{ID: cl.room, Name: "big"}

	b.Run("fold", func(b *testing.B) {
		b.ReportAllocs()
		cpu, _ := processCPU()
		defer reportCPU(b, cpu)
		for b.Loop() {
			st := newRoomState(meta, coldHistory)
			known := newEventStrings(meta.ID)
			for _, e := range entries {
				svc.foldLogged(st, e, known)
			}
			if st.stats.MessageCount != coldRoomMessages {
				b.Fatalf("folded %d messages", st.stats.MessageCount)
			}
		}
	})

	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		cpu, _ := processCPU()
		defer reportCPU(b, cpu)
		for b.Loop() {
			known := newEventStrings(meta.ID)
			for _, e := range entries {
				if _, bad := decodeRoomEventWith(e.Key, e.Rest, e.Data, known); bad != nil {
					b.Fatal(bad)
				}
			}
		}
	})
}
