package testrig

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// HTTPCheck is a readiness check: a URL that answers 200 when its server is
// ready.
type HTTPCheck struct {
	URL      string
	Timeout  time.Duration // bound of the whole wait (required)
	Interval time.Duration // between attempts; 100ms if zero
	// Proc, if set, is the process that should answer: the wait fails as
	// soon as it exits.
	Proc *Proc
}

// perTry bounds one request.
const perTry = 2 * time.Second

// WaitHTTP asks c.URL until it answers 200 (loopback only: no proxy). It
// fails when c.Timeout has passed, ctx ends or c.Proc exits, saying what the
// last answer was. last is the last answer other than 200 before the 200
// ("HTTP 503: draining", or the request's error), "" if there was none, so
// that a slow start can be explained.
func WaitHTTP(ctx context.Context, c HTTPCheck) (last string, err error) {
	if c.Timeout <= 0 {
		return "", fmt.Errorf("wait for %s: no timeout", c.URL)
	}
	interval := c.Interval
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.Timeout, fmt.Errorf("no 200 within %s", c.Timeout))
	defer cancel()
	var exited <-chan struct{}
	if c.Proc != nil {
		exited = c.Proc.Done()
	}
	tr := &http.Transport{DisableKeepAlives: true, Proxy: nil}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		// A process that has exited answers nothing, whatever else may
		// answer on its port.
		select {
		case <-exited:
			return last, c.exitedErr()
		default:
		}
		ok, answer := try(ctx, hc, c.URL)
		if ok {
			return last, nil
		}
		if answer != "" {
			last = answer
		}
		select {
		case <-tick.C:
		case <-exited:
			return last, c.exitedErr()
		case <-ctx.Done():
			if last == "" {
				last = "nothing"
			}
			return last, fmt.Errorf("wait for %s: %w; last answer: %s", c.URL, context.Cause(ctx), last)
		}
	}
}

// exitedErr says that c.Proc exited, and how.
func (c HTTPCheck) exitedErr() error {
	if err := c.Proc.Err(); err != nil {
		return fmt.Errorf("wait for %s: %w", c.URL, err)
	}
	return fmt.Errorf("wait for %s: %s (pid %d) exited: exit status 0", c.URL, c.Proc.Name(), c.Proc.Pid())
}

// try makes one request: ok if it was answered 200, else what happened ("",
// if the wait's own context ended it).
func try(ctx context.Context, hc *http.Client, url string) (ok bool, answer string) {
	rctx, cancel := context.WithTimeout(ctx, perTry)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err.Error()
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ""
		}
		return false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode == http.StatusOK {
		return true, ""
	}
	return false, fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
}
