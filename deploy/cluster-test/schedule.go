package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
	"github.com/heraldhq/herald/pubsub"
)

// runClients runs the clients through nginx, the failure schedule beside
// them, and judges the run.
func (d *driver) runClients(ctx context.Context) error {
	var direct []string
	for i := 1; i <= 3; i++ {
		direct = append(direct, fmt.Sprintf("http://127.0.0.1:%d", d.heraldPort[i]))
	}
	// What is left of the budget, less the presence check and 20s to stop
	// everything and print.
	clientDeadline := (d.budget - time.Since(d.began) - presenceBound - 20*time.Second).Truncate(time.Second)
	if clientDeadline <= 60*time.Second {
		return fmt.Errorf("too little of the %s budget is left for the clients", d.budget)
	}
	// The clients write the start of publishing and the rooms' IDs to
	// -started-file when publishing starts: here, a pipe.
	started, startedW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("run the clients: %w", err)
	}
	defer started.Close()
	logFile, err := os.Create(filepath.Join(d.work, "clients.log"))
	if err != nil {
		startedW.Close()
		return fmt.Errorf("run the clients: %w", err)
	}
	defer logFile.Close()
	out := io.MultiWriter(os.Stdout, logFile)
	args := append([]string{
		"-url", fmt.Sprintf("http://127.0.0.1:%d", d.nginxPort), "-direct", strings.Join(direct, ","),
		"-publish", publishFor.String(), "-sse-clients", "6", "-multipart-clients", "6",
		"-started-file", "/dev/fd/3", "-deadline", clientDeadline.String(),
	}, d.clientArgs...)
	d.logf("running the clients through nginx (bounded by %s)", clientDeadline)
	clients, err := d.rig.Start(testrig.Spec{
		Name: "clients", Path: d.bin("clients"), Args: args,
		Stdout: out, Stderr: out, ExtraFiles: []*os.File{startedW}, Layer: layerFront, Grace: grace,
	})
	startedW.Close() // the clients have their own copy
	if err != nil {
		return fmt.Errorf("run the clients: %w", err)
	}
	d.procs["clients"] = clients

	// The schedule runs once publishing has started, and is abandoned if
	// the clients stop early (a fatal violation).
	firstRoom, err := readStarted(ctx, started, startedWait)
	if err != nil {
		return err
	}
	if firstRoom != "" {
		if err := d.schedule(ctx, time.Now(), firstRoom); err != nil {
			return err
		}
	}

	// The clients bound themselves (-deadline); ctx bounds this wait.
	clientsErr := clients.Wait(ctx)
	if cause := context.Cause(ctx); cause != nil {
		return cause
	}
	var failed []string
	for _, name := range []string{"herald1", "herald2", "herald3", "nats1", "nats2", "nats3", "nginx"} {
		if p := d.procs[name]; p == nil || p.Exited() {
			d.logf("FAIL: %s is not running at the end of the run (it was not stopped by the test)", name)
			failed = append(failed, name)
		}
	}
	if b, err := os.ReadFile(filepath.Join(d.work, "nginx-access.log")); err == nil {
		d.logf("nginx answered: %s", accessSummary(string(b)))
	}
	if clientsErr != nil {
		return fmt.Errorf("the clients failed: %w", clientsErr)
	}
	if len(failed) > 0 {
		return fmt.Errorf("not running at the end: %s", strings.Join(failed, ", "))
	}
	return nil
}

// readStarted waits for the clients' -started-file lines (the start time,
// then the rooms' IDs) and returns the first room's ID, or "" if the
// clients ended without starting to publish.
func readStarted(ctx context.Context, r *os.File, timeout time.Duration) (string, error) {
	if err := r.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return "", fmt.Errorf("wait for publishing to start: %w", err)
	}
	// A cancelled run ends the read at once; the function's goroutine is
	// waited for if it started.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = r.SetReadDeadline(time.Now())
	})
	defer func() {
		if !stop() {
			<-fired
		}
	}()
	sc := bufio.NewScanner(r)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	switch {
	case len(lines) == 2:
		return lines[1], nil
	case ctx.Err() != nil:
		return "", context.Cause(ctx)
	case errors.Is(sc.Err(), os.ErrDeadlineExceeded):
		return "", fmt.Errorf("the clients did not start publishing within %s", timeout)
	case sc.Err() != nil:
		return "", fmt.Errorf("wait for publishing to start: %w", sc.Err())
	}
	return "", nil // the clients ended first
}

// schedule breaks the cluster, timed from t0, the start of publishing. It
// returns early if the clients end: without error if they failed (that is
// the news), with one if they passed before every failure had happened.
func (d *driver) schedule(ctx context.Context, t0 time.Time, firstRoom string) error {
	clients := d.procs["clients"]
	// at waits until t0+offset; false if the clients have ended. Clients
	// that passed (exit 0) before a failure was due did not test it: an
	// error, not a pass (e.g. a -publish shorter than the schedule).
	at := func(offset time.Duration) (bool, error) {
		t := time.NewTimer(time.Until(t0.Add(offset)))
		defer t.Stop()
		select {
		case <-t.C:
			if !clients.Exited() {
				return true, nil
			}
		case <-clients.Done():
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
		if clients.Err() != nil {
			return false, nil // their failure is the news
		}
		return false, fmt.Errorf("the clients exited 0 %.1fs after publishing started, before the failure due at +%s: "+
			"the run did not go through the failure schedule (publishing must outlast it; is -publish shorter than %s?)",
			time.Since(t0).Seconds(), offset, publishFor)
	}
	steps := []struct {
		at  time.Duration
		run func() error
	}{
		{6 * time.Second, func() error { return d.drain(ctx, "herald1") }},
		{12 * time.Second, func() error { return d.kill(ctx, "herald2", "") }},
		{18 * time.Second, func() error {
			d.logf("restart: herald1 and herald2 (same ports)")
			for _, i := range []int{1, 2} {
				if err := d.startHerald(i); err != nil {
					return err
				}
			}
			for _, i := range []int{1, 2} {
				if err := d.waitHerald(ctx, i); err != nil {
					return err
				}
			}
			d.logf("herald1 and herald2 are ready")
			return nil
		}},
		{24 * time.Second, func() error {
			// The stream of the first room's partition: its leader's death
			// stalls that room's posts until JetStream elects another.
			stream := pubsub.PartitionStream("HERALD", partitions, firstRoom)
			k, why := 2, ""
			if leader, err := d.leaderOf(ctx, stream); err == nil && len(leader) == 5 && strings.HasPrefix(leader, "nats") && leader[4] >= '1' && leader[4] <= '3' {
				k, why = int(leader[4]-'0'), ", leader of stream "+stream
			} else {
				d.logf("could not tell the leader of %s (%v); killing nats2", stream, err)
			}
			d.natsKilled = k
			if err := d.kill(ctx, fmt.Sprintf("nats%d", k), why); err != nil {
				return err
			}
			// A replica that starts now finds the streams that node led
			// without a leader for several seconds: it must wait the
			// election out, not fail its start.
			if err := d.kill(ctx, "herald1", " (to start it during the election)"); err != nil {
				return err
			}
			return d.restartHerald(ctx, 1, ", during the election", "")
		}},
		{32 * time.Second, func() error {
			k := d.natsKilled
			d.logf("restart: nats%d (same ports and store directory)", k)
			if err := d.startNATS(k); err != nil {
				return err
			}
			if err := d.waitNATS(ctx, k); err != nil {
				return err
			}
			d.logf("nats%d is healthy", k)
			return nil
		}},
		{38 * time.Second, func() error { return d.drain(ctx, "herald3") }},
		{42 * time.Second, func() error {
			return d.restartHerald(ctx, 3, "", "; every process has been restarted")
		}},
	}
	for _, s := range steps {
		if ok, err := at(s.at); !ok || err != nil {
			return err
		}
		if err := s.run(); err != nil {
			return err
		}
	}
	return nil
}

// restartHerald starts replica i again and waits until it is ready,
// logging both with the notes given.
func (d *driver) restartHerald(ctx context.Context, i int, when, after string) error {
	d.logf("restart: herald%d%s", i, when)
	if err := d.startHerald(i); err != nil {
		return err
	}
	if err := d.waitHerald(ctx, i); err != nil {
		return err
	}
	d.logf("herald%d is ready%s", i, after)
	return nil
}

// leaderOf returns the server name of stream's leader as the NATS
// monitoring endpoints see it (the first that knows).
func (d *driver) leaderOf(ctx context.Context, stream string) (string, error) {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}, Timeout: 2 * time.Second}
	var errs []error
	for i := 1; i <= 3; i++ {
		leader, err := askLeader(ctx, hc, fmt.Sprintf("http://127.0.0.1:%d/jsz?accounts=true&streams=true", d.monPort[i]), stream)
		if err == nil {
			return leader, nil
		}
		errs = append(errs, fmt.Errorf("nats%d: %w", i, err))
	}
	return "", fmt.Errorf("find the leader of stream %s: %w", stream, errors.Join(errs...))
}

func askLeader(ctx context.Context, hc *http.Client, url, stream string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var jsz struct {
		AccountDetails []struct {
			StreamDetail []struct {
				Name    string `json:"name"`
				Cluster struct {
					Leader string `json:"leader"`
				} `json:"cluster"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&jsz); err != nil {
		return "", fmt.Errorf("decode %s: %w", url, err)
	}
	for _, a := range jsz.AccountDetails {
		for _, s := range a.StreamDetail {
			if s.Name == stream && s.Cluster.Leader != "" {
				return s.Cluster.Leader, nil
			}
		}
	}
	return "", errors.New("no leader named")
}
