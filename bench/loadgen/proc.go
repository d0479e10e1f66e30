package main

import (
	"syscall"
	"time"

	"github.com/heraldhq/herald/internal/procstat"
)

// selfCPU is this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// selfMaxRSSKB is this process's peak resident set (getrusage ru_maxrss,
// in kB on Linux).
func selfMaxRSSKB() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss)
}

// procSample is one reading of the server's RSS and CPU.
type procSample struct {
	ok    bool
	rssKB int64
	cpu   time.Duration
}

func sampleProc(pid int) (procSample, error) {
	if pid <= 0 {
		return procSample{}, nil
	}
	rss, err := procstat.RSSKB(pid)
	if err != nil {
		return procSample{}, err
	}
	cpu, err := procstat.CPU(pid)
	if err != nil {
		return procSample{}, err
	}
	return procSample{ok: true, rssKB: rss, cpu: cpu}, nil
}
