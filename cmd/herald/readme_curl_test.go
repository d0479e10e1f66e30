package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/testrig"
)

// readmeCurlPath is the README whose curl examples TestREADMECurlExamples
// runs.
const readmeCurlPath = "../../README.md"

// readmeCurlSnippets says what each curl example of the README does. A
// block is a fenced sh or bash block that runs curl, named by a substring
// only it holds; its commands (comment lines aside) are named in order, each
// by a substring it holds. A block or command that the README has and this
// table has not, or the other way round, fails the test: a new example gets
// a row here.
//
// A command's own output (its stdout; for a stream, what it has written so
// far; for `name=$(…)`, the variable) must pass check. A stream runs in the
// background for the rest of its block. After a command, the block's open
// stream must pass then; again names a command (of any block) that is run
// once a second until it does, to give the stream something to deliver. The
// HTTP status of every command but a stream must be the one its comment
// promises (`# 201: …`), 200 when it promises none.
var readmeCurlSnippets = []snippetSpec{
	{name: "create-post-query", block: "createRoom(", cmds: []commandSpec{
		{key: "createRoom(", check: (*snippetRunner).checkCreateRoom},
		{key: "postMessage(", check: (*snippetRunner).checkPostMessage},
		{key: "rooms {", check: (*snippetRunner).checkRooms},
	}},
	{name: "presence", block: "roomPresence(", cmds: []commandSpec{
		{key: "roomPresence(", stream: true, check: (*snippetRunner).presenceSnapshot},
		{key: "setTyping(", check: (*snippetRunner).checkSetTyping, then: (*snippetRunner).presenceTyping, again: "setTyping("},
	}},
	{name: "sse-distinct-connections", block: "messagePosted(roomId: $r, after: $after)", cmds: []commandSpec{
		{key: "curl -N", stream: true, check: (*snippetRunner).sseOpen, then: (*snippetRunner).sseMessage, again: "postMessage("},
	}},
	{name: "sse-single-connection", block: "X-GraphQL-Event-Stream-Token", cmds: []commandSpec{
		{key: "-X PUT", check: (*snippetRunner).checkToken},
		{key: "curl -N", stream: true, check: (*snippetRunner).sseOpen},
		{key: `"operationId":"op1"`, then: (*snippetRunner).singleNext, again: "postMessage("},
		{key: "-X DELETE", then: (*snippetRunner).singleComplete},
	}},
	{name: "multipart", block: "multipart/mixed", cmds: []commandSpec{
		{key: "curl -N", stream: true, check: (*snippetRunner).multipartOpen, then: (*snippetRunner).multipartMessage, again: "postMessage("},
	}},
	{name: "articles", block: "createAuthor(", skip: "it runs examples/articles, another binary with another schema"},
}

type snippetSpec struct {
	name  string // the subtest's
	block string // a substring of the block, in no other curl block
	skip  string // why the block is not run; "" to run it
	cmds  []commandSpec
}

type commandSpec struct {
	key    string // a substring of the command
	stream bool
	check  func(r *snippetRunner, out string) error // nil: anything
	then   func(r *snippetRunner, stream string) error
	again  string // the key of a command
}

// TestREADMECurlExamples runs the README's curl examples as written, each
// command with real curl under bash, against a Herald process: the only
// changes are the address (localhost:8080 becomes the test replica's) and
// the room placeholders (ROOM_ID, <room id>), which become the room the
// first example creates.
func TestREADMECurlExamples(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed to run the README's curl examples: %v", tool, err)
		}
	}
	readme, err := os.ReadFile(readmeCurlPath)
	if err != nil {
		t.Fatal(err)
	}
	plan := planCurlSnippets(t, string(readme))

	p := startProcess(t, "herald", "--data-dir", t.TempDir())
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Second)
	defer cancel()
	// curl reads its configuration from $CURL_HOME/.curlrc: every curl
	// writes the response's status to stderr, leaving stdout as the README
	// shows it, with no progress meter in the way, and no proxy (nor the
	// user's own .curlrc) gets in between.
	curlHome := t.TempDir()
	curlrc := "write-out = \"%{stderr}\\nHTTP_STATUS %{http_code}\\n\"\nnoproxy = \"*\"\nno-progress-meter\n"
	if err := os.WriteFile(filepath.Join(curlHome, ".curlrc"), []byte(curlrc), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &snippetRunner{
		ctx:     ctx,
		addr:    p.addr,
		env:     append(os.Environ(), "CURL_HOME="+curlHome),
		varFile: filepath.Join(t.TempDir(), "var"),
		vars:    map[string]string{},
		plan:    plan,
	}
	r.learnValues(t)

	for _, b := range plan {
		if b.spec.skip != "" {
			t.Logf("README.md:%d (%s) is not run: %s", b.line, b.spec.name, b.spec.skip)
			continue
		}
		ok := t.Run(b.spec.name, func(t *testing.T) { r.runBlock(t, b) })
		if !ok && r.room == "" {
			t.Fatalf("%s made no room; the other examples need one", b.spec.name)
		}
	}
}

// shellCommand is one command of a README block, as written.
type shellCommand struct {
	text   string // comments and line continuations included
	line   int    // in its block, from 0
	status int    // the HTTP status its comment promises; 0 if none
}

type readmeBlock struct {
	line int // of the opening fence
	text string
}

type plannedBlock struct {
	readmeBlock
	spec snippetSpec
	cmds []plannedCommand
}

type plannedCommand struct {
	shellCommand
	spec  commandSpec
	block *plannedBlock
	n     int // in its block, from 1
}

func (c *plannedCommand) String() string {
	first, _, _ := strings.Cut(c.text, "\n")
	return fmt.Sprintf("README.md:%d (%s, command %d %q): %s", c.block.line+1+c.line, c.block.spec.name, c.n, c.spec.key, first)
}

// shellBlocks returns the fenced code blocks of a shell language.
func shellBlocks(readme string) []readmeBlock {
	var blocks []readmeBlock
	var cur *readmeBlock
	var body []string
	for i, line := range strings.Split(readme, "\n") {
		fence, ok := strings.CutPrefix(strings.TrimSpace(line), "```")
		switch {
		case !ok && cur != nil:
			body = append(body, line)
		case !ok:
		case cur != nil:
			cur.text = strings.Join(body, "\n") + "\n"
			blocks = append(blocks, *cur)
			cur, body = nil, nil
		case slices.Contains([]string{"sh", "bash", "shell", "console", "zsh"}, strings.TrimSpace(fence)):
			cur = &readmeBlock{line: i + 1}
		default:
			// A block of another language: skip to its end.
			cur = &readmeBlock{line: -1}
		}
	}
	return slices.DeleteFunc(blocks, func(b readmeBlock) bool { return b.line < 0 })
}

var promisedStatus = regexp.MustCompile(`^#\s*([1-5][0-9][0-9])\b`)

// splitShellCommands splits a block into its commands the way bash reads
// it: a command ends at a newline outside quotes, $(…) and a backslash
// continuation. Comment-only lines are dropped; a comment after a command
// stays in its text.
func splitShellCommands(block string) []shellCommand {
	var cmds []shellCommand
	var cur strings.Builder
	var comment string
	var inSingle, inDouble bool
	depth, line, startLine := 0, 0, 0
	end := func() {
		text := strings.TrimSpace(cur.String())
		body := strings.TrimSpace(strings.TrimSuffix(text, comment))
		if body != "" {
			c := shellCommand{text: text, line: startLine}
			if m := promisedStatus.FindStringSubmatch(comment); m != nil {
				c.status, _ = strconv.Atoi(m[1])
			}
			cmds = append(cmds, c)
		}
		cur.Reset()
		comment = ""
	}
	for i := 0; i < len(block); i++ {
		c := block[i]
		prev := byte('\n')
		if s := cur.String(); s != "" {
			prev = s[len(s)-1]
		}
		switch {
		case inSingle:
			inSingle = c != '\''
		case inDouble && c == '\\' && i+1 < len(block):
			cur.WriteByte(c)
			i++
			c = block[i]
		case inDouble:
			inDouble = c != '"'
		case c == '\\' && i+1 < len(block):
			cur.WriteByte(c)
			i++
			c = block[i]
		case c == '\'':
			inSingle = true
		case c == '"':
			inDouble = true
		case c == '#' && strings.IndexByte(" \t\n(;", prev) >= 0:
			j := strings.IndexByte(block[i:], '\n')
			if j < 0 {
				j = len(block) - i
			}
			comment = block[i : i+j]
			cur.WriteString(comment)
			i += j - 1
			continue
		case c == '(' && prev == '$':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == '\n' && depth == 0:
			end()
			line++
			startLine = line
			continue
		}
		cur.WriteByte(c)
		if c == '\n' {
			line++
		}
	}
	end()
	return cmds
}

// planCurlSnippets matches the README's curl blocks and their commands
// with readmeCurlSnippets, and fails on any that does not match.
func planCurlSnippets(t *testing.T, readme string) []*plannedBlock {
	t.Helper()
	var curlBlocks []readmeBlock
	for _, b := range shellBlocks(readme) {
		if strings.Contains(b.text, "curl ") {
			curlBlocks = append(curlBlocks, b)
		}
	}
	if len(curlBlocks) == 0 {
		t.Fatalf("%s has no fenced sh or bash block that runs curl", readmeCurlPath)
	}
	var plan []*plannedBlock
	for _, spec := range readmeCurlSnippets {
		var found []readmeBlock
		for _, b := range curlBlocks {
			if strings.Contains(b.text, spec.block) {
				found = append(found, b)
			}
		}
		if len(found) != 1 {
			t.Errorf("%d of the README's curl blocks hold %q (readmeCurlSnippets' %s); want exactly 1", len(found), spec.block, spec.name)
			continue
		}
		pb := &plannedBlock{readmeBlock: found[0], spec: spec}
		plan = append(plan, pb)
		if spec.skip != "" {
			continue
		}
		cmds := splitShellCommands(pb.text)
		for i, c := range cmds {
			if i >= len(spec.cmds) {
				t.Errorf("README.md:%d (%s): command %d is not in readmeCurlSnippets; add it:\n%s", pb.line+1+c.line, spec.name, i+1, c.text)
				continue
			}
			if !strings.Contains(c.text, spec.cmds[i].key) {
				t.Errorf("README.md:%d (%s): command %d does not hold %q, as readmeCurlSnippets says:\n%s", pb.line+1+c.line, spec.name, i+1, spec.cmds[i].key, c.text)
			}
			pb.cmds = append(pb.cmds, plannedCommand{shellCommand: c, spec: spec.cmds[i], block: pb, n: i + 1})
		}
		for _, c := range spec.cmds[min(len(cmds), len(spec.cmds)):] {
			t.Errorf("README.md:%d (%s) has no command holding %q, which readmeCurlSnippets lists", pb.line, spec.name, c.key)
		}
	}
	for _, b := range curlBlocks {
		if !slices.ContainsFunc(plan, func(p *plannedBlock) bool { return p.line == b.line }) {
			t.Errorf("README.md:%d: a curl block that readmeCurlSnippets does not know; add it:\n%s", b.line, b.text)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return plan
}

// snippetRunner runs the commands of the README against one replica.
type snippetRunner struct {
	ctx     context.Context
	addr    string
	env     []string
	varFile string
	vars    map[string]string // set by `name=$(…)` commands
	plan    []*plannedBlock

	// What the README's commands say they send.
	roomName, poster, postText, typist, opID string

	room   string // the room the first block made
	posted int    // messages posted by the README's postMessage command
}

// learnValues reads what the examples send from their text, so that what
// the test expects follows the README.
func (r *snippetRunner) learnValues(t *testing.T) {
	t.Helper()
	find := func(key, pattern string) string {
		t.Helper()
		c := r.command(t, key)
		m := regexp.MustCompile(pattern).FindStringSubmatch(c.text)
		if m == nil {
			t.Fatalf("%s: found nothing matching %s in it", c, pattern)
		}
		return m[1]
	}
	r.roomName = find("createRoom(", `createRoom\(name: \\"([^\\]+)\\"`)
	r.poster = find("postMessage(", `X-Herald-User: ([^'"]+)`)
	r.postText = find("postMessage(", `text: \\"([^\\]+)\\"`)
	r.typist = find("setTyping(", `X-Herald-User: ([^'"]+)`)
	r.opID = find(`"operationId":"op1"`, `"operationId":"([^"]+)"`)
}

// command returns the command whose spec's key is key.
func (r *snippetRunner) command(t *testing.T, key string) *plannedCommand {
	t.Helper()
	var found []*plannedCommand
	for _, b := range r.plan {
		for i := range b.cmds {
			if b.cmds[i].spec.key == key {
				found = append(found, &b.cmds[i])
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("readmeCurlSnippets has %d commands keyed %q; want 1", len(found), key)
	}
	return found[0]
}

func (r *snippetRunner) runBlock(t *testing.T, b *plannedBlock) {
	var stream *shellProc
	var streamCmd *plannedCommand
	for i := range b.cmds {
		c := &b.cmds[i]
		if c.spec.stream {
			if stream != nil {
				t.Fatalf("%s: a second stream in one block", c)
			}
			stream, streamCmd = r.start(t, c), c
			if c.spec.check != nil {
				r.await(t, c, "", stream, streamCmd, c.spec.check, nil)
			}
		} else {
			r.run(t, c)
		}
		if c.spec.then != nil {
			if stream == nil {
				t.Fatalf("%s: readmeCurlSnippets expects a stream open, and none is", c)
			}
			var again *plannedCommand
			if c.spec.again != "" {
				again = r.command(t, c.spec.again)
			}
			r.await(t, c, "then ", stream, streamCmd, c.spec.then, again)
		}
	}
}

// script is the command as bash runs it: the README's text for the test's
// replica and room.
func (r *snippetRunner) script(t *testing.T, c *plannedCommand) string {
	t.Helper()
	s := strings.ReplaceAll(c.text, "localhost:8080", r.addr)
	if strings.Contains(s, "ROOM_ID") || strings.Contains(s, "<room id>") {
		if r.room == "" {
			t.Fatalf("%s: needs a room, and there is none yet", c)
		}
		s = strings.ReplaceAll(strings.ReplaceAll(s, "ROOM_ID", r.room), "<room id>", r.room)
	}
	return s
}

func (r *snippetRunner) environ() []string {
	env := slices.Clone(r.env)
	for k, v := range r.vars {
		env = append(env, k+"="+v)
	}
	return env
}

var shellAssignment = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=\$\(`)

const commandTimeout = 10 * time.Second

// run runs a command to its end and checks its exit status, its HTTP
// status and its output.
func (r *snippetRunner) run(t *testing.T, c *plannedCommand) {
	t.Helper()
	script := r.script(t, c)
	assigned := ""
	if m := shellAssignment.FindStringSubmatch(c.text); m != nil {
		// Hand the variable on to the commands after this one.
		assigned = m[1]
		script += fmt.Sprintf("\nstatus=$?\nprintf '%%s' \"$%s\" >%q\nexit $status\n", assigned, r.varFile)
	}
	ctx, cancel := context.WithTimeout(r.ctx, commandTimeout)
	defer cancel()
	p := startShell(t, ctx, script, r.environ())
	<-p.done
	out, errOut := p.stdout.String(), p.stderr.String()
	if assigned != "" {
		v, err := os.ReadFile(r.varFile)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		r.vars[assigned], out = string(v), string(v)
	}
	if p.err != nil {
		t.Fatalf("%s: %v (within %s)\nstdout: %q\nstderr: %q", c, p.err, commandTimeout, out, errOut)
	}
	want, why := c.status, "its comment promises it"
	if want == 0 {
		want, why = 200, "its comment promises no other"
	}
	if got := curlStatus(errOut); got != want {
		t.Errorf("%s: HTTP status %d, want %d (%s)\nstdout: %q\nstderr: %q", c, got, want, why, out, errOut)
	}
	if c.spec.check != nil {
		if err := c.spec.check(r, out); err != nil {
			t.Fatalf("%s: %v\nit wrote: %q", c, err, out)
		}
	}
}

var curlStatusLine = regexp.MustCompile(`HTTP_STATUS (\d{3})`)

// curlStatus is the last status curl reported (see the .curlrc), or 0.
func curlStatus(stderr string) int {
	m := curlStatusLine.FindAllStringSubmatch(stderr, -1)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// start runs a streaming command in the background until the test (or the
// block's subtest) ends.
func (r *snippetRunner) start(t *testing.T, c *plannedCommand) *shellProc {
	t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	p := startShell(t, ctx, r.script(t, c), r.environ())
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// await waits until the stream's output passes check, running again (if
// not nil) at once and then every second meanwhile; at most 10 s.
func (r *snippetRunner) await(t *testing.T, c *plannedCommand, what string, stream *shellProc, streamCmd *plannedCommand, check func(*snippetRunner, string) error, again *plannedCommand) {
	t.Helper()
	const within = 10 * time.Second
	which := "it"
	if streamCmd != c {
		which = "the stream, " + streamCmd.String() + ","
	}
	deadline := time.Now().Add(within)
	var last time.Time
	if again == c {
		last = time.Now() // it has just run
	}
	for {
		if again != nil && time.Since(last) >= time.Second {
			r.run(t, again)
			last = time.Now()
		}
		out := stream.stdout.String()
		err := check(r, out)
		if err == nil {
			return
		}
		select {
		case <-stream.done:
			t.Fatalf("%s: %s%v, and %s ended (%v)\nthe stream wrote: %q\nits stderr: %q", c, what, err, which, stream.err, out, stream.stderr.String())
		default:
		}
		if time.Now().After(deadline) || r.ctx.Err() != nil {
			t.Fatalf("%s: %s%v within %s\n%s wrote: %q", c, what, err, within, which, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// shellProc is bash running a command in a process group of its own, which
// is killed when its context ends.
type shellProc struct {
	stdout, stderr testrig.LogBuffer
	done           chan struct{}
	err            error // how it ended; written before done is closed
}

func startShell(t *testing.T, ctx context.Context, script string, env []string) *shellProc {
	t.Helper()
	p := &shellProc{done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "bash", "-c", script)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &p.stdout, &p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bash: %v", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// Checks of what the commands write.

// decodeGraphQL decodes a GraphQL response with no errors into data.
func decodeGraphQL(raw string, data any) error {
	var resp gqlResponse
	if err := json.Unmarshal([]byte(raw), &resp); err != nil {
		return fmt.Errorf("not a GraphQL response: %v", err)
	}
	if len(resp.Errors) > 0 {
		return fmt.Errorf("errors: %+v", resp.Errors)
	}
	if err := json.Unmarshal(resp.Data, data); err != nil {
		return fmt.Errorf("data: %v", err)
	}
	return nil
}

func (r *snippetRunner) checkCreateRoom(out string) error {
	var data struct{ CreateRoom struct{ ID, Name string } }
	if err := decodeGraphQL(out, &data); err != nil {
		return err
	}
	if data.CreateRoom.ID == "" || data.CreateRoom.Name != r.roomName {
		return fmt.Errorf("want createRoom with an id and name %q", r.roomName)
	}
	r.room = data.CreateRoom.ID
	return nil
}

func (r *snippetRunner) checkPostMessage(out string) error {
	var data struct {
		PostMessage struct {
			ID      string
			Version int
			Room    struct{ MessageCount int }
		}
	}
	if err := decodeGraphQL(out, &data); err != nil {
		return err
	}
	m := data.PostMessage
	if m.ID == "" || m.Version != 1 || m.Room.MessageCount != r.posted+1 {
		return fmt.Errorf("want postMessage with an id, version 1 and room.messageCount %d", r.posted+1)
	}
	r.posted++
	return nil
}

func (r *snippetRunner) checkRooms(out string) error {
	var data struct {
		Rooms struct {
			Nodes []struct {
				Name         string
				MessageCount int
				Messages     struct {
					Nodes []struct {
						Text   string
						Author struct{ Name string }
					}
				}
			}
		}
	}
	if err := decodeGraphQL(out, &data); err != nil {
		return err
	}
	for _, room := range data.Rooms.Nodes {
		if room.Name != r.roomName {
			continue
		}
		msgs := room.Messages.Nodes
		if room.MessageCount != r.posted || len(msgs) == 0 || msgs[len(msgs)-1].Text != r.postText || msgs[len(msgs)-1].Author.Name != r.poster {
			return fmt.Errorf("want room %q with messageCount %d, its last message %q by %s", r.roomName, r.posted, r.postText, r.poster)
		}
		return nil
	}
	return fmt.Errorf("no room %q in rooms.nodes", r.roomName)
}

func (r *snippetRunner) checkSetTyping(out string) error {
	var data struct{ SetTyping bool }
	if err := decodeGraphQL(out, &data); err != nil {
		return err
	}
	if !data.SetTyping {
		return errors.New("want setTyping true")
	}
	return nil
}

func (r *snippetRunner) checkToken(token string) error {
	if strings.TrimSpace(token) == "" || strings.ContainsAny(token, "{}\" \n") {
		return fmt.Errorf("want a stream token, got %q", token)
	}
	return nil
}

type readmeSSEEvent struct{ event, id, data string }

// sseEvents parses the whole events of an event stream.
func sseEvents(stream string) []readmeSSEEvent {
	var events []readmeSSEEvent
	chunks := strings.Split(stream, "\n\n")
	for _, chunk := range chunks[:len(chunks)-1] { // the last is not whole
		var e readmeSSEEvent
		var data []string
		for _, line := range strings.Split(chunk, "\n") {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				e.event = value
			case "id":
				e.id = value
			case "data":
				data = append(data, value)
			}
		}
		if e.event != "" || data != nil {
			e.data = strings.Join(data, "\n")
			events = append(events, e)
		}
	}
	return events
}

// findSSE returns nil if events hold one of the kind whose data decodes
// into a value that match accepts.
func findSSE[T any](events []readmeSSEEvent, kind string, match func(T) bool, want string) error {
	for _, e := range events {
		var v T
		if e.event == kind && json.Unmarshal([]byte(e.data), &v) == nil && match(v) {
			return nil
		}
	}
	return fmt.Errorf("no `event: %s` with %s", kind, want)
}

type presenceData struct {
	Data struct {
		RoomPresence struct {
			Kind   string
			User   *struct{ ID string }
			Count  int
			Users  []struct{ ID string }
			Typing []struct{ ID string }
		}
	}
}

// presenceSnapshot wants the first event a SNAPSHOT, as the README says.
func (r *snippetRunner) presenceSnapshot(stream string) error {
	first := sseEvents(stream)
	first = first[:min(1, len(first))]
	return findSSE(first, "next", func(p presenceData) bool {
		return p.Data.RoomPresence.Kind == "SNAPSHOT"
	}, "a roomPresence SNAPSHOT as the first event")
}

func (r *snippetRunner) presenceTyping(stream string) error {
	return findSSE(sseEvents(stream), "next", func(p presenceData) bool {
		ev := p.Data.RoomPresence
		return ev.Kind == "TYPING" && ev.User != nil && ev.User.ID == r.typist &&
			slices.ContainsFunc(ev.Typing, func(u struct{ ID string }) bool { return u.ID == r.typist })
	}, fmt.Sprintf("a roomPresence TYPING of %s, who is in typing", r.typist))
}

func (r *snippetRunner) sseOpen(stream string) error {
	if !strings.HasPrefix(stream, ":\n\n") {
		return errors.New("the event stream has not opened (no `:` comment line)")
	}
	return nil
}

func (r *snippetRunner) sseMessage(stream string) error {
	for _, e := range sseEvents(stream) {
		var v struct {
			Data       struct{ MessagePosted struct{ ID, Text string } }
			Extensions struct{ Cursor string }
		}
		if e.event == "next" && json.Unmarshal([]byte(e.data), &v) == nil && v.Data.MessagePosted.Text == r.postText {
			if v.Data.MessagePosted.ID == "" || e.id == "" || v.Extensions.Cursor != e.id {
				return fmt.Errorf("the message %q came without an id, or without its cursor as the event's id and extensions.cursor", r.postText)
			}
			return nil
		}
	}
	return fmt.Errorf("no `event: next` with messagePosted.text %q", r.postText)
}

type singleConnectionData struct {
	ID      string
	Payload struct {
		Data struct{ MessagePosted struct{ Text string } }
	}
}

func (r *snippetRunner) singleNext(stream string) error {
	return findSSE(sseEvents(stream), "next", func(v singleConnectionData) bool {
		return v.ID == r.opID && v.Payload.Data.MessagePosted.Text == r.postText
	}, fmt.Sprintf(`{"id":%q,"payload":{"data":{"messagePosted":{"text":%q}}}}`, r.opID, r.postText))
}

func (r *snippetRunner) singleComplete(stream string) error {
	return findSSE(sseEvents(stream), "complete", func(v singleConnectionData) bool {
		return v.ID == r.opID
	}, fmt.Sprintf(`{"id":%q}`, r.opID))
}

const readmeMultipartDelimiter = "\r\n--graphql"

func (r *snippetRunner) multipartOpen(stream string) error {
	if !strings.HasPrefix(stream, readmeMultipartDelimiter+"\r\n") {
		return errors.New("the multipart stream has not opened (no `--graphql` delimiter)")
	}
	return nil
}

func (r *snippetRunner) multipartMessage(stream string) error {
	parts := strings.Split(stream, readmeMultipartDelimiter)
	for _, part := range parts[1 : len(parts)-1] { // whole parts: a delimiter after them
		head, body, ok := strings.Cut(strings.TrimPrefix(part, "\r\n"), "\r\n\r\n")
		if !ok || !strings.Contains(strings.ToLower(head), "content-type: application/json") {
			continue
		}
		var v struct {
			Payload struct {
				Data struct{ MessagePosted struct{ ID, Text string } }
			}
		}
		if json.Unmarshal([]byte(body), &v) == nil && v.Payload.Data.MessagePosted.Text == r.postText && v.Payload.Data.MessagePosted.ID != "" {
			return nil
		}
	}
	return fmt.Errorf(`no whole part {"payload":{"data":{"messagePosted":{"id":…,"text":%q}}}}`, r.postText)
}

// TestSplitShellCommands checks the splitting the README's blocks rely on:
// a newline inside quotes or after a backslash does not end a command, and a
// comment (quotes in it included) does.
func TestSplitShellCommands(t *testing.T) {
	block := "# don't run this\n" +
		"a=$(curl -s x)   # 201: it's made\n" +
		"curl -d '{\"q\":\"x\",\n   \"v\":1}' \\\n  -H \"A: \\\"b\\\"\" x#y\n" +
		"\n" +
		"echo 'a # b' # 404\n"
	got := splitShellCommands(block)
	want := []shellCommand{
		{text: "a=$(curl -s x)   # 201: it's made", line: 1, status: 201},
		{text: "curl -d '{\"q\":\"x\",\n   \"v\":1}' \\\n  -H \"A: \\\"b\\\"\" x#y", line: 2},
		{text: "echo 'a # b' # 404", line: 6, status: 404},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}
