package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// healthcheckTimeout bounds `herald healthcheck`.
const healthcheckTimeout = 3 * time.Second

// healthcheck is `herald healthcheck [flags]`: it asks the replica
// configured by the same flags and HERALD_* variables for /readyz and
// exits 0 when it is ready, 1 otherwise (a bad configuration too). The
// container image has no shell or curl, so its HEALTHCHECK runs this.
func healthcheck(args []string, getenv func(string) string, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "herald healthcheck: invalid configuration:\n%v\n", err)
		return 1 // not 2, which Docker reserves: a HEALTHCHECK exits 0 or 1
	}
	// url.URL escapes an IPv6 zone ("[fe80::1%eth0]:8080") as it must be.
	target := (&url.URL{Scheme: "http", Host: localAddr(cfg.Addr), Path: "/readyz"}).String()
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		fmt.Fprintf(stderr, "herald healthcheck: %v\n", err)
		return 1
	}
	resp, err := healthcheckClient.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "herald healthcheck: GET %s: %v\n", target, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "herald healthcheck: %s answered %d: %s\n", target, resp.StatusCode, body)
		return 1
	}
	return 0
}

// healthcheckClient asks the replica itself: never through HTTP_PROXY
// (Docker passes the client's proxy settings into containers, and a proxy
// may answer for an address nothing listens on), and a redirect is an
// answer, not readiness.
var healthcheckClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// localAddr is where a process on the same host reaches a listener bound
// to addr: the wildcard hosts become loopback.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
