package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// quietLogger logs warnings and errors to the test's log.
func quietLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// natsCluster starts an n-node NATS cluster with JetStream on loopback and
// waits until its meta leader counts every node online; the nodes are
// stopped when the test ends. It returns the client URLs.
func natsCluster(t *testing.T, n int) []string {
	t.Helper()
	var clients, routes, stores []string
	for range n {
		clients = append(clients, freeAddr(t))
		routes = append(routes, freeAddr(t))
		stores = append(stores, t.TempDir()) // before the nodes' cleanup, so removed after it
	}
	var routeURLs []*url.URL
	for _, r := range routes {
		routeURLs = append(routeURLs, &url.URL{Scheme: "nats-route", Host: r})
	}
	split := func(addr string) (string, int) {
		h, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		return h, port
	}
	var nodes []*natsserver.Server
	t.Cleanup(func() {
		for _, s := range nodes {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for i := range n {
		h, p := split(clients[i])
		rh, rp := split(routes[i])
		srv, err := natsserver.NewServer(&natsserver.Options{
			ServerName: fmt.Sprintf("node%d", i),
			Host:       h, Port: p,
			JetStream: true,
			StoreDir:  filepath.Join(stores[i], "js"),
			Cluster:   natsserver.ClusterOpts{Name: "test-cluster", Host: rh, Port: rp},
			Routes:    routeURLs,
			NoSigs:    true, NoLog: true,
		})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatalf("node %d not ready", i)
		}
		nodes = append(nodes, srv)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		online := 0
		for _, s := range nodes {
			if s.JetStreamIsLeader() {
				online = len(s.JetStreamClusterPeers())
			}
		}
		if online == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no meta leader with %d peers after 30s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	urls := make([]string, n)
	for i, c := range clients {
		urls[i] = "nats://" + c
	}
	return urls
}

// streamConfig is the configuration of stream name on the NATS at urls.
func streamConfig(t *testing.T, ctx context.Context, urls []string, name string) jetstream.StreamConfig {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().Config
}
