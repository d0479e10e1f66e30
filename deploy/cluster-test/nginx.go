package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

var (
	blankOrComment = regexp.MustCompile(`^[[:space:]]*(#|$)`)
	resolverLine   = regexp.MustCompile(`^[[:space:]]*resolver[[:space:]]`)
	resolveParam   = regexp.MustCompile(`[[:space:]]resolve([[:space:];])`)
	loopbackServer = regexp.MustCompile(`^server 127\.0\.0\.1:[0-9]+ `)
	leftover       = regexp.MustCompile(`herald[0-9]|resolve`)
	backupParam    = regexp.MustCompile(`[[:space:]]backup[[:space:];]`)
	listen8080     = regexp.MustCompile(`(?m)^([[:space:]]*)listen[[:space:]]+8080;`)
	listenLine     = regexp.MustCompile(`(?m)^[[:space:]]*listen`)
)

// loopbackUpstreams derives the test's upstreams.conf from the shipped one:
// without comments, blank lines, `resolver` lines and `resolve` (Debian's
// nginx has no `resolve`, and the ports need no DNS), and with heraldN:8080
// mapped to 127.0.0.1:ports[N-1]. With fewer than three ports, the lines of
// the replicas beyond them are left out (a smaller cluster). It fails
// unless that leaves exactly one loopback `server` line per port, besides
// `backup` ones.
func loopbackUpstreams(shipped string, ports []int) (string, error) {
	var out []string
lines:
	for line := range strings.Lines(shipped) {
		line = strings.TrimRight(line, "\n")
		if blankOrComment.MatchString(line) || resolverLine.MatchString(line) {
			continue
		}
		for n := len(ports) + 1; n <= 3; n++ {
			if regexp.MustCompile(fmt.Sprintf(`\bherald%d:8080\b`, n)).MatchString(line) {
				continue lines
			}
		}
		line = resolveParam.ReplaceAllString(line, "$1")
		for i, port := range ports {
			re := regexp.MustCompile(fmt.Sprintf(`\bherald%d:8080\b`, i+1))
			line = re.ReplaceAllLiteralString(line, fmt.Sprintf("127.0.0.1:%d", port))
		}
		out = append(out, line)
	}
	conf := strings.Join(out, "\n") + "\n"
	servers := 0
	for _, l := range out {
		if loopbackServer.MatchString(l) && !backupParam.MatchString(l) {
			servers++
		}
	}
	if len(ports) < 1 || len(ports) > 3 || servers != len(ports) || leftover.MatchString(conf) {
		return "", fmt.Errorf("deploy/upstreams.conf no longer has the three 'server heraldN:8080 ...' lines this test maps to loopback:\n%s", conf)
	}
	return conf, nil
}

// loopbackListen derives the test's listen.conf from the shipped one: its
// `listen 8080;` on 127.0.0.1:port. It fails unless that is its only
// listen line.
func loopbackListen(shipped string, port int) (string, error) {
	conf := listen8080.ReplaceAllString(shipped, fmt.Sprintf("${1}listen 127.0.0.1:%d;", port))
	if !strings.Contains(conf, fmt.Sprintf("listen 127.0.0.1:%d;", port)) || len(listenLine.FindAllString(conf, -1)) != 1 {
		return "", fmt.Errorf("deploy/listen.conf no longer is the single 'listen 8080;' this test maps to loopback:\n%s", shipped)
	}
	return conf, nil
}

// tempPaths is the conf.d file that keeps nginx's temporary files in dir.
func tempPaths(dir string) string {
	var b strings.Builder
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "%s_temp_path %s/%s;\n", t, dir, t)
	}
	return b.String()
}

// statusField is the status after the quoted request in nginx.conf's
// log_format herald.
var statusField = regexp.MustCompile(`" ([0-9]{3}) `)

// retried marks a request that nginx tried on more than one replica
// ($upstream_addr lists them).
var retried = regexp.MustCompile(`upstream=[^ ]*, `)

// accessSummary says how nginx answered, from its access log: "101 ×42,
// 200 ×3000; requests tried on more than one replica: 5".
func accessSummary(log string) string {
	counts := map[string]int{}
	tries := 0
	for line := range strings.Lines(log) {
		for _, m := range statusField.FindAllStringSubmatch(line, -1) {
			counts[m[1]]++
		}
		if retried.MatchString(line) {
			tries++
		}
	}
	var parts []string
	for _, code := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", code, counts[code]))
	}
	return fmt.Sprintf("%s; requests tried on more than one replica: %d", strings.Join(parts, ", "), tries)
}

// answeredOK matches an access log line of a request answered 200 or 101.
var answeredOK = regexp.MustCompile(`" (200|101) `)

// notOK returns the access log's lines of requests not answered 200 or 101.
func notOK(log string) []string {
	var out []string
	for line := range strings.Lines(log) {
		if line = strings.TrimRight(line, "\n"); line != "" && !answeredOK.MatchString(line) {
			out = append(out, line)
		}
	}
	return out
}

// lastLines returns the last n lines of text.
func lastLines(text string, n int) []string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
