package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/pubsub"
)

// cmdPorts prints n distinct free ports on 127.0.0.1: all are bound at once,
// then released. (Another process could take one before it is used; the
// driver's readiness checks would then fail loudly.)
func cmdPorts(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: clients ports N")
		return 2
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 1 || n > 100 {
		fmt.Fprintln(os.Stderr, "clients ports: N must be 1..100")
		return 2
	}
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, "clients ports:", err)
			return 1
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, " "))
	return 0
}

// cmdStreamOf prints the name of the partition stream that holds a room's
// events: clients stream-of BASE PARTITIONS ROOMID.
func cmdStreamOf(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: clients stream-of BASE PARTITIONS ROOMID")
		return 2
	}
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 1 {
		fmt.Fprintf(os.Stderr, "clients stream-of: bad partition count %q\n", args[1])
		return 2
	}
	fmt.Println(pubsub.PartitionStream(args[0], n, args[2]))
	return 0
}

// cmdLeader prints the server name of STREAM's leader as the NATS monitoring
// endpoints see it (the first that knows), or fails.
func cmdLeader(ctx context.Context, args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: clients leader STREAM http://host:monitorport...")
		return 2
	}
	stream := args[0]
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, base := range args[1:] {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/jsz?accounts=true&streams=true", nil)
		if err != nil {
			continue
		}
		resp, err := hc.Do(req)
		if err != nil {
			continue
		}
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
		err = json.NewDecoder(resp.Body).Decode(&jsz)
		resp.Body.Close()
		if err != nil {
			continue
		}
		for _, a := range jsz.AccountDetails {
			for _, s := range a.StreamDetail {
				if s.Name == stream && s.Cluster.Leader != "" {
					fmt.Println(s.Cluster.Leader)
					return 0
				}
			}
		}
	}
	fmt.Fprintf(os.Stderr, "clients leader: no monitoring endpoint named a leader of stream %s\n", stream)
	return 1
}
