package pubsub

import (
	"errors"
	"testing"
	"time"
)

// TestCheckLimitInForce: two replicas that open the log at the same
// moment, before either is alive in presence, are both let through by
// Open; the one whose limit the other changed learns it from
// CheckLimitInForce, the other is told nothing.
func TestCheckLimitInForce(t *testing.T) {
	for _, tt := range []struct {
		name    string
		a, b    int64
		wantErr error
	}{
		{"raised under it", 3, 6, ErrHistoryRaised},
		{"lowered under it (empty log)", 6, 3, ErrHistoryLowered},
		{"kept", 3, 3, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := startNATS(t, true)
			a := openLog(t, Options{URLs: []string{url}, MaxMsgsPerSubject: tt.a})
			b := openLog(t, Options{URLs: []string{url}, MaxMsgsPerSubject: tt.b})
			ctx := testCtx(t, 10*time.Second)
			err := a.CheckLimitInForce(ctx)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("A: CheckLimitInForce = %v, want nil", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("A opened with %d, B with %d: CheckLimitInForce = %v, want %v", tt.a, tt.b, err, tt.wantErr)
			}
			if err := b.CheckLimitInForce(ctx); err != nil {
				t.Errorf("B, whose limit is in force: CheckLimitInForce = %v, want nil", err)
			}
		})
	}
}
