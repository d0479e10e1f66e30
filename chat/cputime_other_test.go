//go:build !unix

package chat

import "time"

func processCPU() (time.Duration, bool) { return 0, false }
