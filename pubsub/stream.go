package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// jsErrCodeSubjectOverlap is the JetStream API error code for "subjects
// overlap with an existing stream" (nats-server JSStreamSubjectOverlapErr).
const jsErrCodeSubjectOverlap jetstream.ErrorCode = 10065

// wantConfig is the stream configuration Options ask for.
func (o Options) wantConfig() jetstream.StreamConfig {
	maxPer := o.MaxMsgsPerSubject
	if maxPer == 0 {
		maxPer = -1 // JetStream spells "unlimited" as -1.
	}
	return jetstream.StreamConfig{
		Name:              o.Stream,
		Subjects:          o.Subjects,
		Retention:         jetstream.LimitsPolicy,
		MaxMsgsPerSubject: maxPer,
		Storage:           jetstream.FileStorage,
		Replicas:          o.Replicas,
		Duplicates:        o.DuplicateWindow,
		Discard:           jetstream.DiscardOld,
	}
}

// setupStream creates the stream or updates an existing one to match the
// options, then records the configuration in force.
// streamLookupAttempt bounds one stream look-up. A JetStream request can go
// unanswered while the cluster elects a stream leader; it is retried until
// the start-up context ends rather than failing start-up at once.
const streamLookupAttempt = 2 * time.Second

// lookUpStream looks the stream up, retrying requests that time out.
func (l *Log) lookUpStream(ctx context.Context, name string) (jetstream.Stream, error) {
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, streamLookupAttempt)
		s, err := l.js.Stream(attemptCtx, name)
		cancel()
		if err == nil || ctx.Err() != nil || !isTimeout(err) {
			return s, err
		}
		l.log.Warn("stream look-up timed out; retrying (is a JetStream leader being elected?)", "stream", name, "err", err)
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoHeartbeat)
}

func (l *Log) setupStream(ctx context.Context) error {
	want := l.opts.wantConfig()
	// A concurrent replica may create the stream between our look-up and our
	// create; loop back to the update path in that case.
	for attempt := 0; ; attempt++ {
		s, err := l.lookUpStream(ctx, want.Name)
		switch {
		case err == nil:
			return l.reconcile(ctx, s, want)
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return fmt.Errorf("look up stream %q on %s: %w", want.Name, l.where, err)
		}
		s, err = l.js.CreateStream(ctx, want)
		if err == nil {
			l.log.Info("created stream", "subjects", want.Subjects, "replicas", want.Replicas,
				"max_msgs_per_subject", l.opts.MaxMsgsPerSubject, "duplicate_window", want.Duplicates)
			l.adopt(s)
			return nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) && attempt < 2 {
			continue
		}
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrCodeSubjectOverlap {
			other := "another stream"
			if names := l.streamsCapturing(ctx, want.Subjects); len(names) > 0 {
				other = fmt.Sprintf("stream %q", strings.Join(names, `", "`))
			}
			return newError(ErrStreamConflict, err,
				"stream %q cannot be created on %s: its subjects %s overlap those of %s (%s): remove that stream or configure different subjects",
				want.Name, l.where, fmtSubjects(want.Subjects), other, apiErr.Description)
		}
		if errors.As(err, &apiErr) {
			return fmt.Errorf("create stream %q (subjects %s, replicas %d) on %s: the server refused: %s: %w",
				want.Name, fmtSubjects(want.Subjects), want.Replicas, l.where, apiErr.Description, err)
		}
		return fmt.Errorf("create stream %q on %s: %w", want.Name, l.where, err)
	}
}

// streamsCapturing names the streams whose subjects overlap subjects; best
// effort, for error messages.
func (l *Log) streamsCapturing(ctx context.Context, subjects []string) []string {
	var names []string
	for _, subj := range subjects {
		lister := l.js.StreamNames(ctx, jetstream.WithStreamListSubject(subj))
		for name := range lister.Name() {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	return names
}

// reconcile checks an existing stream against want and updates the settings
// this package owns when they differ. Settings it does not own (MaxAge,
// MaxBytes, ...) are left as the operator set them.
func (l *Log) reconcile(ctx context.Context, s jetstream.Stream, want jetstream.StreamConfig) error {
	have := s.CachedInfo().Config
	if have.Storage != want.Storage {
		return newError(ErrStreamConflict, nil,
			"stream %q exists with a conflicting configuration: storage is %s, herald needs %s (storage cannot be changed: delete the stream or configure another stream name)",
			want.Name, strings.ToLower(have.Storage.String()), strings.ToLower(want.Storage.String()))
	}
	if have.Retention != want.Retention {
		return newError(ErrStreamConflict, nil,
			"stream %q exists with a conflicting configuration: retention is %s, herald needs %s (delete the stream or configure another stream name)",
			want.Name, have.Retention, want.Retention)
	}
	if have.Mirror != nil {
		return newError(ErrStreamConflict, nil,
			"stream %q exists with a conflicting configuration: it is a mirror of %q and cannot be written to (configure another stream name)",
			want.Name, have.Mirror.Name)
	}

	diffs := configDiffs(have, want)
	if len(diffs) == 0 {
		l.adopt(s)
		return nil
	}
	cfg := have
	cfg.Subjects = want.Subjects
	cfg.MaxMsgsPerSubject = want.MaxMsgsPerSubject
	cfg.Replicas = want.Replicas
	cfg.Duplicates = want.Duplicates
	cfg.Discard = want.Discard
	updated, err := l.js.UpdateStream(ctx, cfg)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) {
			return newError(ErrStreamConflict, err,
				"stream %q exists with a conflicting configuration: %s (herald tried to change %s; update the stream by hand or change these options)",
				want.Name, apiErr.Description, strings.Join(diffs, ", "))
		}
		return fmt.Errorf("update stream %q (%s) on %s: %w", want.Name, strings.Join(diffs, ", "), l.where, err)
	}
	l.log.Info("updated stream configuration", "changes", strings.Join(diffs, ", "))
	l.adopt(updated)
	return nil
}

// adopt records the stream handle and the configuration in force.
func (l *Log) adopt(s jetstream.Stream) {
	info := s.CachedInfo()
	l.stream = s
	l.maxPerSubject = max(info.Config.MaxMsgsPerSubject, 0)
	l.epoch = info.Created
}

// configDiffs lists, as "setting have -> want", the owned settings where
// have differs from want.
func configDiffs(have, want jetstream.StreamConfig) []string {
	var diffs []string
	if !sameSubjects(have.Subjects, want.Subjects) {
		diffs = append(diffs, fmt.Sprintf("subjects %s -> %s", fmtSubjects(have.Subjects), fmtSubjects(want.Subjects)))
	}
	if normLimit(have.MaxMsgsPerSubject) != normLimit(want.MaxMsgsPerSubject) {
		diffs = append(diffs, fmt.Sprintf("max_msgs_per_subject %s -> %s",
			fmtLimit(have.MaxMsgsPerSubject), fmtLimit(want.MaxMsgsPerSubject)))
	}
	if max(have.Replicas, 1) != max(want.Replicas, 1) {
		diffs = append(diffs, fmt.Sprintf("replicas %d -> %d", max(have.Replicas, 1), want.Replicas))
	}
	if have.Duplicates != want.Duplicates {
		diffs = append(diffs, fmt.Sprintf("duplicate_window %s -> %s", fmtDuration(have.Duplicates), fmtDuration(want.Duplicates)))
	}
	if have.Discard != want.Discard {
		diffs = append(diffs, fmt.Sprintf("discard %s -> %s", have.Discard, want.Discard))
	}
	return diffs
}

func sameSubjects(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func fmtSubjects(s []string) string { return "[" + strings.Join(s, " ") + "]" }

// normLimit maps every "unlimited" spelling (0 or negative) to -1.
func normLimit(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}

func fmtLimit(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return fmt.Sprint(n)
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return "server default"
	}
	return d.String()
}
