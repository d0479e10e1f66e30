package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// RateReport is what the rate command did.
type RateReport struct {
	URL      string  `json:"url"`
	Rooms    int     `json:"rooms"`
	Batch    int     `json:"batch"`
	Inflight int     `json:"inflight"`
	Target   float64 `json:"target_per_sec"`
	// WindowSec is the scheduled window; ElapsedSec runs from its start to
	// the last answer.
	WindowSec  float64 `json:"window_sec"`
	ElapsedSec float64 `json:"elapsed_sec"`
	// Messages posted (sent), stored (acked) and failed; AchievedPerSec
	// is acked over ElapsedSec.
	Sent           int64   `json:"messages_sent"`
	Acked          int64   `json:"messages_acked"`
	Failed         int64   `json:"messages_failed"`
	Requests       int64   `json:"requests"`
	Retries        int64   `json:"retries"`
	AchievedPerSec float64 `json:"achieved_per_sec"`
	// Late counts requests sent more than 50 ms after they were due (every
	// request in flight, or the machine busy).
	Late int64 `json:"late_requests"`
	// Unsent counts requests due in the window that found no free slot
	// before it ended (every request in flight): B fell behind.
	Unsent  int64        `json:"unsent_requests"`
	HTTP    Percentiles  `json:"http_ms"`
	Errors  []string     `json:"errors"`
	Watched *WatchReport `json:"watched,omitempty"`
	// Control is the same process over --control before the window, with
	// nothing posted: what it costs without this traffic.
	Control *WatchReport `json:"control,omitempty"`
	// CreateSec is how long creating the rooms took (before the window).
	CreateSec float64 `json:"create_rooms_sec"`
}

// WatchReport is another process's CPU and RSS over the window
// (--watch-pid): sampled just before the first post and at the window's
// scheduled end, and each second in between for the peak.
type WatchReport struct {
	PID           int     `json:"pid"`
	WindowSec     float64 `json:"window_sec"`
	CPUSec        float64 `json:"cpu_sec"`
	CPUPctOneCore float64 `json:"cpu_pct_of_one_core"`
	RSSStartKB    int64   `json:"rss_start_kb"`
	RSSEndKB      int64   `json:"rss_end_kb"`
	RSSMaxKB      int64   `json:"rss_max_kb"`
	RSSGrowthKB   int64   `json:"rss_growth_kb"`
	// MachineBusyPct is how busy every CPU of the machine was over the
	// window (100 = all of them), from /proc/stat; -1 if unknown.
	MachineBusyPct float64 `json:"machine_busy_pct"`
	Error          string  `json:"error,omitempty"`
}

// Percentiles of a set of durations, in milliseconds.
type Percentiles struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// percentiles uses the nearest rank: the p-quantile of n sorted values is
// the ceil(p·n)-th.
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := func(p float64) float64 {
		k := int(p*float64(len(s)) + 0.999999999)
		k = min(max(k, 1), len(s))
		return float64(s[k-1]) / float64(time.Millisecond)
	}
	return Percentiles{N: len(s), P50: rank(0.50), P99: rank(0.99), Max: float64(s[len(s)-1]) / float64(time.Millisecond)}
}

func rateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("seed rate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8080/graphql", "Herald's GraphQL endpoint")
	user := fs.String("user", "rate", "the dev-auth user (X-Herald-User) that creates and posts")
	rooms := fs.Int("rooms", 1000, "rooms to post into, round-robin: created with --room-prefix, or the first ones of --manifest")
	prefix := fs.String("room-prefix", "", "names of the rooms created (default rate-<base36 time>)")
	manifest := fs.String("manifest", "", "post into rooms of this seed manifest instead of creating rooms")
	rate := fs.Float64("rate", 5000, "messages per second")
	duration := fs.Duration("duration", 30*time.Second, "how long to post")
	batch := fs.Int("batch", 5, "postMessage mutations per HTTP request (one room per request)")
	inflight := fs.Int("inflight", 64, "HTTP requests in flight at most")
	retries := fs.Int("retries", 3, "retries of a request that failed transiently (with the same idempotency keys)")
	attempt := fs.Duration("attempt-timeout", 10*time.Second, "bound on one HTTP attempt")
	waitFile := fs.String("wait-file", "", "after creating the rooms, start posting only once this file exists")
	waitTimeout := fs.Duration("wait-timeout", 3*time.Minute, "bound on waiting for --wait-file")
	watchPID := fs.Int("watch-pid", 0, "report this process's CPU and RSS over the window (from /proc)")
	control := fs.Duration("control", 0, "with --watch-pid: first watch the process this long without posting (a control window)")
	jsonPath := fs.String("json", "", "write the report as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *rooms < 1 || *batch < 1 || *batch > maxBatch || *inflight < 1 || *retries < 0 {
		fmt.Fprintf(stderr, "seed rate: want no arguments, --rooms and --inflight at least 1, --batch 1..%d\n", maxBatch)
		return 2
	}
	if *prefix == "" {
		*prefix = "rate-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	logf := progress(stderr, *quiet)
	rep := &RateReport{URL: *url, Rooms: *rooms, Batch: *batch, Inflight: *inflight, Target: *rate, WindowSec: duration.Seconds(), Errors: []string{}}
	code := func() int {
		if _, err := newPacer(time.Now(), *rate, *batch, *duration); err != nil {
			fmt.Fprintf(stderr, "seed rate: %v\n", err)
			return 2
		}
		setup, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		cl := newClient(*url, *user, *inflight, *retries, *attempt)
		var ids []string
		if *manifest != "" {
			m, err := readManifest(*manifest)
			if err != nil {
				fmt.Fprintf(stderr, "seed rate: %v\n", err)
				return 2
			}
			if len(m.Rooms) < *rooms {
				fmt.Fprintf(stderr, "seed rate: %s has %d rooms, fewer than --rooms %d\n", *manifest, len(m.Rooms), *rooms)
				return 2
			}
			for _, r := range m.Rooms[:*rooms] {
				ids = append(ids, r.ID)
			}
		} else {
			names := make([]string, *rooms)
			for i := range names {
				names[i] = roomName(*prefix, i)
			}
			t0 := time.Now()
			var err error
			ids, _, err = createRooms(setup, cl, names, 50, *inflight, logf)
			rep.CreateSec = time.Since(t0).Seconds()
			if err != nil {
				rep.Errors = append(rep.Errors, err.Error())
				fmt.Fprintf(stderr, "seed rate: %v\n", err)
				return 1
			}
			logf("created %d rooms in %.1fs", len(ids), rep.CreateSec)
		}
		if *waitFile != "" {
			logf("waiting for %s", *waitFile)
			if err := waitForFile(setup, *waitFile, *waitTimeout); err != nil {
				rep.Errors = append(rep.Errors, err.Error())
				fmt.Fprintf(stderr, "seed rate: %v\n", err)
				return 1
			}
		}
		if *control > 0 && *watchPID > 0 {
			logf("control window: watching pid %d for %s without posting", *watchPID, *control)
			rep.Control = startWatch(*watchPID, time.Now().Add(*control)).wait()
		}
		postAtRate(ctx, cl, *prefix, ids, *rate, *batch, *duration, *inflight, *watchPID, rep, logf)
		if rep.Failed > 0 {
			return 1
		}
		return 0
	}()
	if *jsonPath != "" {
		if err := writeJSON(*jsonPath, rep); err != nil {
			fmt.Fprintf(stderr, "seed rate: --json: %v\n", err)
			return 1
		}
	}
	if code != 2 {
		fmt.Fprintf(stdout, "seed rate: %d rooms, target %.0f/s for %.0fs: %d sent, %d stored, %d failed in %.1fs = %.0f/s achieved; %d requests (%d late, %d not sent in the window, %d retries), HTTP p50 %.1f ms p99 %.1f ms\n",
			rep.Rooms, rep.Target, rep.WindowSec, rep.Sent, rep.Acked, rep.Failed, rep.ElapsedSec, rep.AchievedPerSec, rep.Requests, rep.Late, rep.Unsent, rep.Retries, rep.HTTP.P50, rep.HTTP.P99)
		for _, w := range []struct {
			what string
			w    *WatchReport
		}{{"control window, not posting", rep.Control}, {"posting window", rep.Watched}} {
			if w.w != nil {
				fmt.Fprintf(stdout, "seed rate: pid %d, %s, %.1fs: CPU %.2fs = %.2f%% of one core; RSS %d → %d kB (%+d kB, peak %d kB); machine %.0f%% busy%s\n",
					w.w.PID, w.what, w.w.WindowSec, w.w.CPUSec, w.w.CPUPctOneCore, w.w.RSSStartKB, w.w.RSSEndKB, w.w.RSSGrowthKB, w.w.RSSMaxKB, w.w.MachineBusyPct, errSuffix(w.w.Error))
			}
		}
		for _, e := range rep.Errors {
			fmt.Fprintf(stderr, "seed rate: error: %s\n", e)
		}
	}
	return code
}

// sendBy hands k to a worker unless ctx ends or end passes first.
func sendBy(ctx context.Context, jobs chan<- int, k int, end time.Time) bool {
	if !time.Now().Before(end) {
		return false
	}
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case jobs <- k:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return false
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " (error: " + e + ")"
}

func waitForFile(ctx context.Context, path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %s", path, timeout)
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// postAtRate posts batch messages per request to the rooms round-robin,
// paced at rate messages per second for duration, and fills rep.
func postAtRate(ctx context.Context, cl *client, prefix string, ids []string, rate float64, batch int,
	duration time.Duration, inflight, watchPID int, rep *RateReport, logf func(string, ...any)) {
	var (
		acked, failed, sent, requests, retries, late atomic.Int64
		mu                                           sync.Mutex
		lat                                          []time.Duration
		lastDone                                     atomic.Int64
	)
	errorf := func(format string, args ...any) {
		mu.Lock()
		if len(rep.Errors) < 20 {
			rep.Errors = append(rep.Errors, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range inflight {
		wg.Go(func() {
			for k := range jobs {
				room := k % len(ids)
				round := k / len(ids)
				posts := make([]Post, batch)
				for i := range posts {
					n := round*batch + i
					posts[i] = Post{Text: "bg " + strconv.Itoa(room) + " #" + strconv.Itoa(n), Key: messageKey(prefix, room, n)}
				}
				t := time.Now()
				_, n, err := cl.do(ctx, postBatch(ids[room], posts))
				d := time.Since(t)
				requests.Add(int64(n + 1))
				retries.Add(int64(n))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				if err != nil {
					failed.Add(int64(batch))
					errorf("room %d (%s): %v", room, ids[room], err)
				} else {
					acked.Add(int64(batch))
				}
				lastDone.Store(time.Now().UnixNano())
			}
		})
	}

	start := time.Now()
	p, _ := newPacer(start, rate, batch, duration)
	var watch *watcher
	if watchPID > 0 {
		watch = startWatch(watchPID, p.end)
	}
	total := p.requests()
	logf("posting %d messages/s (%d requests of %d) for %s into %d rooms", int(rate), total, batch, duration, len(ids))
	nextLog := start.Add(10 * time.Second)
	for k := range total {
		if d := p.wait(k, time.Now()); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		// A request still waiting for a free slot when the window ends is
		// not sent: the window is what is measured.
		if !sendBy(ctx, jobs, k, p.end) {
			break
		}
		sent.Add(int64(batch))
		if time.Since(p.due(k)) > 50*time.Millisecond {
			late.Add(1)
		}
		if now := time.Now(); now.After(nextLog) {
			nextLog = now.Add(10 * time.Second)
			logf("%d sent, %d stored, %d failed, %d late requests", sent.Load(), acked.Load(), failed.Load(), late.Load())
		}
	}
	close(jobs)
	wg.Wait()
	if watch != nil {
		rep.Watched = watch.wait()
	}
	rep.Sent, rep.Acked, rep.Failed = sent.Load(), acked.Load(), failed.Load()
	rep.Requests, rep.Retries, rep.Late = requests.Load(), retries.Load(), late.Load()
	rep.Unsent = int64(total) - sent.Load()/int64(batch)
	if l := lastDone.Load(); l > 0 {
		rep.ElapsedSec = time.Unix(0, l).Sub(start).Seconds()
	}
	if rep.ElapsedSec > 0 {
		rep.AchievedPerSec = float64(rep.Acked) / rep.ElapsedSec
	}
	rep.HTTP = percentiles(lat)
	if ctx.Err() != nil {
		errorf("interrupted: %v", ctx.Err())
		rep.Failed += rep.Sent - rep.Acked - rep.Failed
	}
}

// watcher samples a process from now until end.
type watcher struct {
	done chan struct{}
	rep  WatchReport
}

func startWatch(pid int, end time.Time) *watcher {
	w := &watcher{done: make(chan struct{}), rep: WatchReport{PID: pid, MachineBusyPct: -1}}
	busy0, total0, machErr := machineCPU()
	first, err := sampleProc(pid)
	if err != nil {
		w.rep.Error = err.Error()
		close(w.done)
		return w
	}
	go func() {
		defer close(w.done)
		peak := first.RSSKB
		last := first
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			wait := time.Until(end)
			if wait <= 0 {
				break
			}
			select {
			case <-t.C:
			case <-time.After(wait):
			}
			s, err := sampleProc(pid)
			if err != nil {
				w.rep.Error = err.Error()
				return
			}
			peak = max(peak, s.RSSKB)
			last = s
		}
		w.rep.WindowSec = last.At.Sub(first.At).Seconds()
		w.rep.CPUSec = (last.CPU - first.CPU).Seconds()
		if w.rep.WindowSec > 0 {
			w.rep.CPUPctOneCore = 100 * w.rep.CPUSec / w.rep.WindowSec
		}
		w.rep.RSSStartKB, w.rep.RSSEndKB, w.rep.RSSMaxKB = first.RSSKB, last.RSSKB, peak
		w.rep.RSSGrowthKB = last.RSSKB - first.RSSKB
		if busy1, total1, err := machineCPU(); err == nil && machErr == nil && total1 > total0 {
			w.rep.MachineBusyPct = 100 * float64(busy1-busy0) / float64(total1-total0)
		}
	}()
	return w
}

func (w *watcher) wait() *WatchReport {
	<-w.done
	return &w.rep
}
