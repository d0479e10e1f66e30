// Command presence is benchmark scenario S8 (issue 16, point 4): presence
// traffic under churn. It creates --rooms rooms, opens --clients
// graphql-transport-ws sockets (user <prefix><i>), each subscribed to
// roomPresence of room i mod --rooms, so each client is present in its
// room and hears everyone else come and go. Then, for --duration, each
// client leaves its room (completes the subscription) and comes back
// (subscribes again) every --period, at a random phase, and every
// presence message is counted. It reports presence messages per second per
// connected client (mean and the busiest client), the events by kind, and,
// given --server-pid, the server's CPU over the run.
//
// Exit status: 0 done; 2 bad flags; 3 setup failed.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/procstat"
)

// Config is one run.
type Config struct {
	URL             string // GraphQL endpoint; sockets use ws:// of it
	Clients, Rooms  int
	Duration        time.Duration
	Period          time.Duration // each client leaves and comes back once per period
	ServerPID       int
	UserPrefix      string
	DialConcurrency int
	SetupTimeout    time.Duration
}

// Report is what a run measured.
type Report struct {
	Clients, Rooms       int
	Seconds              float64
	Rejoins              int64            // leave-and-come-back cycles done
	Leaves               int64            // leaves done, the last ones maybe not followed by a rejoin
	Messages             int64            // presence messages received during the run
	PerClientPerSecond   float64          // Messages / Clients / Seconds
	BusiestPerSecond     float64          // the client that received most, per second
	Kinds                map[string]int64 // messages by kind
	ServerCPUSeconds     float64          `json:",omitempty"`
	ServerCPUUtilisation float64          `json:",omitempty"` // CPU seconds per second
	ServerRSSKB          int64            `json:",omitempty"`
	// Ended counts the clients the server cut off during the run: a
	// socket it closed, or a presence it ended (error, complete). Any
	// fails the run: its rates would be over fewer clients than Clients.
	Ended int64
}

func main() { os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr)) }

func cli(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("presence", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	var jsonPath string
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:8080/graphql", "Herald's GraphQL endpoint")
	fs.IntVar(&cfg.Clients, "clients", 5000, "WebSocket clients, each present in one room")
	fs.IntVar(&cfg.Rooms, "rooms", 50, "rooms, created at start")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "how long clients come and go")
	fs.DurationVar(&cfg.Period, "period", 10*time.Second, "each client leaves its room and comes back once per period")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "Herald's PID, to report its CPU and RSS from /proc")
	fs.StringVar(&cfg.UserPrefix, "user-prefix", "pr", "client users are <prefix><i>")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 64, "connections being set up at once")
	fs.DurationVar(&cfg.SetupTimeout, "setup-timeout", 2*time.Minute, "bound on creating rooms and connecting")
	fs.StringVar(&jsonPath, "json", "", "write the report as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.Clients < 1 || cfg.Rooms < 1 || cfg.Duration <= 0 || cfg.Period <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "presence: --clients, --rooms, --duration and --period must be positive; no arguments")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if err != nil && rep == nil {
		fmt.Fprintf(stderr, "presence: %v\n", err)
		return 3
	}
	fmt.Fprintf(stdout, "S8 presence: %d clients in %d rooms for %.0fs, %d rejoins: %.2f presence messages/s per client (busiest %.2f/s); kinds %v",
		rep.Clients, rep.Rooms, rep.Seconds, rep.Rejoins, rep.PerClientPerSecond, rep.BusiestPerSecond, rep.Kinds)
	if cfg.ServerPID > 0 {
		fmt.Fprintf(stdout, "; server CPU %.2f s/s, RSS %d MiB", rep.ServerCPUUtilisation, rep.ServerRSSKB/1024)
	}
	fmt.Fprintln(stdout)
	if jsonPath != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintf(stderr, "presence: --json: %v\n", err)
			return 1
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "presence: %v\n", err)
		return 1
	}
	return 0
}

const presenceQuery = `subscription($r: ID!) { roomPresence(roomId: $r) { kind user { id } count } }`

// client is one socket; its reader counts what arrives.
type client struct {
	ws   *websocket.Conn
	room string
	wmu  sync.Mutex // one writer at a time

	counting *atomic.Bool
	closing  *atomic.Bool  // set once the run is over: the sockets' ends are ours
	ended    *atomic.Int64 // clients the server cut off (Report.Ended)
	messages atomic.Int64
	kinds    *kindCounts
}

type kindCounts struct {
	mu sync.Mutex
	n  map[string]int64
}

func (k *kindCounts) add(kind string) {
	k.mu.Lock()
	k.n[kind]++
	k.mu.Unlock()
}

func (c *client) send(v any) error {
	b, _ := json.Marshal(v)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, b)
}

func (c *client) subscribe(id string) error {
	return c.send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": presenceQuery, "variables": map[string]any{"r": c.room}}})
}

// read counts presence messages until the socket ends.
func (c *client) read() {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			if !c.closing.Load() {
				c.ended.Add(1)
			}
			return
		}
		var m struct {
			Type    string
			Payload json.RawMessage // an error's is a list
		}
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		switch m.Type {
		case "ping":
			_ = c.send(map[string]any{"type": "pong"})
		case "next":
			var p struct {
				Data struct{ RoomPresence struct{ Kind string } }
			}
			_ = json.Unmarshal(m.Payload, &p)
			if c.counting.Load() {
				c.messages.Add(1)
				c.kinds.add(p.Data.RoomPresence.Kind)
			}
		case "error", "complete": // the client only ever completes it itself
			if !c.closing.Load() {
				c.ended.Add(1)
			}
		}
	}
}

// Run runs the scenario.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	setupCtx, cancel := context.WithTimeout(ctx, cfg.SetupTimeout)
	defer cancel()
	rooms := make([]string, cfg.Rooms)
	for i := range rooms {
		id, err := createRoom(setupCtx, cfg.URL, fmt.Sprintf("s8-%d-%d", time.Now().UnixNano(), i))
		if err != nil {
			return nil, err
		}
		rooms[i] = id
	}
	counting, closing, ended := &atomic.Bool{}, &atomic.Bool{}, &atomic.Int64{}
	kinds := &kindCounts{n: map[string]int64{}}
	clients := make([]*client, cfg.Clients)
	var (
		readers sync.WaitGroup
		dialErr error
		errOnce sync.Once
		sem     = make(chan struct{}, cfg.DialConcurrency)
		dialing sync.WaitGroup
	)
	defer func() {
		closing.Store(true)
		for _, c := range clients {
			if c != nil {
				_ = c.ws.Close()
			}
		}
		readers.Wait()
	}()
	wsURL := "ws" + strings.TrimPrefix(cfg.URL, "http")
	for i := range clients {
		sem <- struct{}{}
		dialing.Add(1)
		go func() {
			defer dialing.Done()
			defer func() { <-sem }()
			c, err := dial(setupCtx, wsURL, fmt.Sprintf("%s%d", cfg.UserPrefix, i), rooms[i%len(rooms)])
			if err != nil {
				errOnce.Do(func() { dialErr = err })
				return
			}
			c.counting, c.closing, c.ended, c.kinds = counting, closing, ended, kinds
			clients[i] = c
			readers.Add(1)
			go func() { defer readers.Done(); c.read() }()
			if err := c.subscribe("p0"); err != nil {
				errOnce.Do(func() { dialErr = err })
			}
		}()
	}
	dialing.Wait()
	if dialErr != nil {
		return nil, fmt.Errorf("set up clients: %w", dialErr)
	}

	var cpu0 time.Duration
	if cfg.ServerPID > 0 {
		cpu0, _ = procstat.CPU(cfg.ServerPID)
	}
	runCtx, stopRun := context.WithTimeout(ctx, cfg.Duration)
	defer stopRun()
	counting.Store(true)
	start := time.Now()
	var (
		rejoins, leaves atomic.Int64
		churn           sync.WaitGroup
	)
	for _, c := range clients {
		churn.Add(1)
		go func() {
			defer churn.Done()
			phase := time.Duration(rand.Int64N(int64(cfg.Period)))
			t := time.NewTimer(phase)
			defer t.Stop()
			for n := 1; ; n++ {
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				// Away for half a period: long enough to be seen leaving.
				if c.send(map[string]any{"id": fmt.Sprintf("p%d", n-1), "type": "complete"}) != nil {
					return
				}
				leaves.Add(1)
				t.Reset(cfg.Period / 2)
				select {
				case <-runCtx.Done():
					return
				case <-t.C:
				}
				if c.subscribe(fmt.Sprintf("p%d", n)) != nil {
					return
				}
				rejoins.Add(1)
				t.Reset(cfg.Period / 2)
			}
		}()
	}
	churn.Wait()
	counting.Store(false)
	closing.Store(true)
	elapsed := time.Since(start)

	rep := &Report{Clients: cfg.Clients, Rooms: cfg.Rooms, Seconds: elapsed.Seconds(), Rejoins: rejoins.Load(), Leaves: leaves.Load(), Kinds: map[string]int64{}}
	var busiest int64
	for _, c := range clients {
		n := c.messages.Load()
		rep.Messages += n
		busiest = max(busiest, n)
	}
	rep.PerClientPerSecond = float64(rep.Messages) / float64(cfg.Clients) / elapsed.Seconds()
	rep.BusiestPerSecond = float64(busiest) / elapsed.Seconds()
	kinds.mu.Lock()
	for k, v := range kinds.n {
		rep.Kinds[k] = v
	}
	kinds.mu.Unlock()
	if cfg.ServerPID > 0 {
		if cpu1, err := procstat.CPU(cfg.ServerPID); err == nil {
			rep.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
			rep.ServerCPUUtilisation = rep.ServerCPUSeconds / elapsed.Seconds()
		}
		rep.ServerRSSKB, _ = procstat.RSSKB(cfg.ServerPID)
	}
	if rep.Ended = ended.Load(); rep.Ended > 0 {
		return rep, fmt.Errorf("the server cut off %d of %d clients during the run (sockets closed, presence ended)", rep.Ended, cfg.Clients)
	}
	return rep, nil
}

func dial(ctx context.Context, wsURL, user, room string) (*client, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 15 * time.Second,
		ReadBufferSize: 1024, WriteBufferSize: 1024}
	ws, _, err := d.DialContext(ctx, wsURL, nil)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	c := &client{ws: ws, room: room}
	if err := c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"user": user}}); err != nil {
		_ = ws.Close()
		return nil, err
	}
	_ = ws.SetReadDeadline(time.Now().Add(15 * time.Second))
	var ack struct{ Type string }
	if err := ws.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		_ = ws.Close()
		return nil, fmt.Errorf("connection_init as %s: %v %q", user, err, ack.Type)
	}
	_ = ws.SetReadDeadline(time.Time{})
	return c, nil
}

func createRoom(ctx context.Context, url, name string) (string, error) {
	body, _ := json.Marshal(map[string]any{"query": `mutation($n: String!) { createRoom(name: $n) { id } }`, "variables": map[string]any{"n": name}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(auth.DevHeader, "s8-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("create room %s: %w", name, err)
	}
	defer resp.Body.Close()
	var out struct {
		Data   struct{ CreateRoom struct{ ID string } }
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("create room %s: %w", name, err)
	}
	if len(out.Errors) > 0 || out.Data.CreateRoom.ID == "" {
		return "", errors.New("create room " + name + ": " + fmt.Sprint(out.Errors))
	}
	return out.Data.CreateRoom.ID, nil
}
