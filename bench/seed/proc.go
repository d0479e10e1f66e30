package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/procstat"
)

// procSample is one reading of a process's RSS and CPU time.
type procSample struct {
	At    time.Time
	RSSKB int64
	CPU   time.Duration
}

// sampleProc reads pid's RSS and CPU time.
func sampleProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	var err error
	if s.RSSKB, err = procstat.RSSKB(pid); err != nil {
		return s, err
	}
	s.CPU, err = procstat.CPU(pid)
	return s, err
}

// machineCPU returns the machine's busy and total CPU time in ticks from
// the first line of /proc/stat (idle and iowait count as not busy).
func machineCPU() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseProcStat(b)
}

func parseProcStat(b []byte) (busy, total uint64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("malformed /proc/stat")
	}
	var idle uint64
	for i, s := range f[1:] {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("malformed /proc/stat: %v", err)
		}
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return total - idle, total, nil
}
