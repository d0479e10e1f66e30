package chat

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
	"github.com/heraldhq/herald/pubsub"
)

// logLines are the lines of a text log whose message is msg.
func logLines(out, msg string) []string {
	var lines []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, `msg="`+msg+`"`) {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestUnansweredAppendIsAWarning: a post whose client is still there, and
// which the log leaves unanswered for the whole apply timeout (the outcome
// OUTCOME_UNKNOWN), is the log's fault and the operator's business: it is
// logged as a warning, though the append's own context, which carries the
// apply timeout, has ended as it would if the client had left.
func TestUnansweredAppendIsAWarning(t *testing.T) {
	logs := &testrig.LogBuffer{}
	svc := startService(t, &leftAckLog{Log: openLog(t, pubsub.Options{})}, Options{
		ApplyTimeout: 300 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	room := mustRoom(t, svc, "unanswered")
	// The client never leaves: no deadline, never canceled.
	_, err := svc.PostMessage(context.Background(), alice, room.ID, "into the void", "")
	wantCode(t, err, CodeOutcomeUnknown)
	lines := logLines(logs.String(), "appending an event failed")
	if len(lines) == 0 {
		t.Fatalf("the unanswered append was not logged at all:\n%s", logs)
	}
	for _, line := range lines {
		if !strings.Contains(line, "level=WARN") {
			t.Errorf("an append the log left unanswered for the apply timeout, its client still waiting, is logged below warning: %s", line)
		}
	}
}

// silentDirectoryLog is a log whose directory add waits until its
// context ends, as one whose acknowledgement has not come when the client
// leaves.
type silentDirectoryLog struct {
	*pubsub.Log
}

func (l *silentDirectoryLog) AddToDirectory(ctx context.Context, key string, data []byte) (pubsub.AppendResult, error) {
	<-ctx.Done()
	return pubsub.AppendResult{}, ctx.Err()
}

// TestClientLeavingCreateRoomIsNoWarning: a createRoom whose client hangs
// up while its room's directory entry waits for the log is logged at debug
// level, as any command's append is: any client could otherwise make one
// warning per hang-up.
func TestClientLeavingCreateRoomIsNoWarning(t *testing.T) {
	logs := &testrig.LogBuffer{}
	svc := startService(t, &silentDirectoryLog{Log: openLog(t, pubsub.Options{})}, Options{
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel) // the client hangs up
	if _, err := svc.CreateRoom(ctx, alice, "hung-up"); err == nil {
		t.Fatal("a room whose client left before its acknowledgement was created")
	}
	for _, line := range logLines(logs.String(), "adding a room to the directory failed") {
		if !strings.Contains(line, "level=DEBUG") {
			t.Errorf("a createRoom whose client hung up is logged above debug (one warning per hang-up, any client can repeat it): %s", line)
		}
	}
}
