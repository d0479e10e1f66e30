package main

import (
	"io"
	"strings"
	"testing"
)

// TestConfigBounds: each documented bound refuses the first value past
// it, naming the flag and its variable, and accepts the bound itself, so
// that a bound is where the help text and the README say it is.
func TestConfigBounds(t *testing.T) {
	secret := "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ" // 36 bytes, many distinct
	token := "abcdefgh0123456789-._~ABCDEFGHIJ"      // 32 bytes of letters, digits and -._~
	if len(token) != 32 {
		t.Fatalf("token is %d bytes", len(token))
	}
	withJWT := func(extra ...string) []string {
		return append([]string{"--auth", "jwt", "--jwt-secret", secret}, extra...)
	}
	refused := []struct {
		name string
		args []string
		want string
	}{
		{"data-dir only white space", []string{"--data-dir", "  "}, "--data-dir (HERALD_DATA_DIR): must be set"},
		{"stream-replicas 6 on external NATS", []string{"--nats-url", "nats://x:4222", "--stream-replicas", "6"}, "--stream-replicas (HERALD_STREAM_REPLICAS): must be between 1 and 5, got 6"},
		{"room-cache one byte short of 1 MiB", []string{"--room-cache", "1048575"}, "--room-cache (HERALD_ROOM_CACHE): must be at least 1048576"},
		{"jwt-secret of 31 bytes", []string{"--auth", "jwt", "--jwt-secret", secret[:31]}, "--jwt-secret (HERALD_JWT_SECRET): must be at least 32 bytes, got 31"},
		{"jwt-cookie with DEL", withJWT("--jwt-cookie", "sess\x7fion"), "--jwt-cookie (HERALD_JWT_COOKIE)"},
		{"ws-subscribe-rate -0.5", []string{"--ws-subscribe-rate", "-0.5"}, "--ws-subscribe-rate (HERALD_WS_SUBSCRIBE_RATE): must not be negative"},
		{"mutation-rate -0.001", []string{"--mutation-rate", "-0.001"}, "--mutation-rate (HERALD_MUTATION_RATE): must not be negative"},
		{"max-text-length 4001", []string{"--max-text-length", "4001"}, "--max-text-length (HERALD_MAX_TEXT_LENGTH): must be between 1 and 4000, got 4001"},
		{"max-text-length 0", []string{"--max-text-length", "0"}, "--max-text-length (HERALD_MAX_TEXT_LENGTH)"},
		{"max-body-bytes 1023", []string{"--max-body-bytes", "1023"}, "--max-body-bytes (HERALD_MAX_BODY_BYTES): must be at least 1024, got 1023"},
		{"ws-max-message-bytes 1023", []string{"--ws-max-message-bytes", "1023"}, "--ws-max-message-bytes (HERALD_WS_MAX_MESSAGE_BYTES): must be at least 1024, got 1023"},
		{"ws-queue-bytes 4095", []string{"--ws-queue-bytes", "4095"}, "--ws-queue-bytes (HERALD_WS_QUEUE_BYTES): must be at least 4096, got 4095"},
		{"ws-queue 0", []string{"--ws-queue", "0"}, "--ws-queue (HERALD_WS_QUEUE): must be at least 1, got 0"},
		// 1 would refuse every addition to a private room and every edit
		// and reaction (judgeProposal keeps the last entry for a removal
		// or a deletion).
		{"room-history 1", []string{"--room-history", "1"}, "--room-history (HERALD_ROOM_HISTORY): must be at least 2, got 1"},
		{"ws-ping-interval 9ms", []string{"--ws-ping-interval", "9ms"}, "--ws-ping-interval (HERALD_WS_PING_INTERVAL): must be between 10ms and 10m"},
		{"ws-pong-timeout 10m1ms", []string{"--ws-pong-timeout", "10m0.001s"}, "--ws-pong-timeout (HERALD_WS_PONG_TIMEOUT): must be between 10ms and 10m"},
		{"ws-init-timeout 0", []string{"--ws-init-timeout", "0s"}, "--ws-init-timeout (HERALD_WS_INIT_TIMEOUT)"},
		{"drain-timeout 10m1ms", []string{"--drain-timeout", "10m0.001s"}, "--drain-timeout (HERALD_DRAIN_TIMEOUT): must be between 0s and 10m"},
		{"shutdown-timeout 1h1ms", []string{"--shutdown-timeout", "1h0m0.001s"}, "--shutdown-timeout (HERALD_SHUTDOWN_TIMEOUT): must be positive and at most 1h"},
		{"apply-timeout negative", []string{"--apply-timeout", "-1s"}, "--apply-timeout (HERALD_APPLY_TIMEOUT): must be positive"},
		{"nats-token of 31 bytes", []string{"--nats-listen", "127.0.0.1:0", "--nats-token", token[:31]}, "--nats-token (HERALD_NATS_TOKEN): must be at least 32 bytes, got 31"},
		// ":" in the token would make it a user name in nats://<token>@host.
		{"nats-token with a colon", []string{"--nats-listen", "127.0.0.1:0", "--nats-token", token[:20] + ":" + token[21:]}, "--nats-token (HERALD_NATS_TOKEN): must be letters, digits and -._~ only"},
		{"nats-token with an inner space", []string{"--nats-listen", "127.0.0.1:0", "--nats-token", token[:20] + " " + token[21:]}, "--nats-token (HERALD_NATS_TOKEN): holds white space"},
		{"nats-token with external NATS", []string{"--nats-url", "nats://x:4222", "--nats-token", token}, "--nats-token (HERALD_NATS_TOKEN): applies to the embedded NATS server only"},
		{"nats-token without nats-listen", []string{"--nats-token", token}, "--nats-token (HERALD_NATS_TOKEN): applies with --nats-listen only"},
		{"nats-listen beyond loopback without token", []string{"--nats-listen", "0.0.0.0:4222"}, "--nats-listen (HERALD_NATS_LISTEN)"},
		{"nats-listen port out of range", []string{"--nats-listen", "127.0.0.1:65536"}, "--nats-listen (HERALD_NATS_LISTEN)"},
		{"addr port 65536", []string{"--addr", "127.0.0.1:65536"}, "--addr (HERALD_ADDR)"},
		{"pprof not host:port", []string{"--pprof", "6060"}, "--pprof (HERALD_PPROF)"},
		{"mutation-rate in hex, upper-case X", []string{"--mutation-rate", "0X1P4"}, "--mutation-rate (HERALD_MUTATION_RATE): invalid value \"0X1P4\""},
		{"stream of 235 characters", []string{"--stream", strings.Repeat("A", 235)}, "--stream (HERALD_STREAM): is 235 characters, at most 234"},
	}
	for _, tt := range refused {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.args, noEnv, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("parseConfig(%q) err = %v, want it to contain %q", tt.args, err, tt.want)
			}
		})
	}
	accepted := []struct {
		name string
		args []string
	}{
		{"room-cache of 1 MiB", []string{"--room-cache", "1048576"}},
		{"room-history 2", []string{"--room-history", "2"}},
		{"jwt-secret of 32 bytes", []string{"--auth", "jwt", "--jwt-secret", secret[:32]}},
		{"max-text-length 1", []string{"--max-text-length", "1"}},
		{"max-text-length 4000", []string{"--max-text-length", "4000"}},
		{"max-body-bytes 1024", []string{"--max-body-bytes", "1024"}},
		{"ws-max-message-bytes 1024", []string{"--ws-max-message-bytes", "1024"}},
		{"ws-queue-bytes 4096 and ws-queue 1", []string{"--ws-queue-bytes", "4096", "--ws-queue", "1"}},
		{"ws durations at their bounds", []string{"--ws-ping-interval", "10ms", "--ws-pong-timeout", "10m", "--ws-init-timeout", "10ms"}},
		{"drain-timeout 10m", []string{"--drain-timeout", "10m"}},
		{"drain-timeout 0", []string{"--drain-timeout", "0s"}},
		{"shutdown-timeout 1h", []string{"--shutdown-timeout", "1h"}},
		{"stream-replicas 5 on external NATS", []string{"--nats-url", "nats://x:4222", "--stream-replicas", "5"}},
		{"partitions 256", []string{"--partitions", "256"}},
		{"nats-token of 32 bytes", []string{"--nats-listen", "127.0.0.1:0", "--nats-token", token}},
		{"nats-listen on LOCALHOST without token", []string{"--nats-listen", "LOCALHOST:4222"}},
		{"stream of 234 characters", []string{"--stream", strings.Repeat("A", 234)}},
		{"limits at zero", []string{"--max-connections", "0", "--ws-subscribe-rate", "0", "--mutation-rate", "0", "--max-depth", "0"}},
	}
	for _, tt := range accepted {
		t.Run("accepts "+tt.name, func(t *testing.T) {
			if _, err := parseConfig(tt.args, noEnv, io.Discard); err != nil {
				t.Fatalf("parseConfig(%q): %v", tt.args, err)
			}
		})
	}
}
