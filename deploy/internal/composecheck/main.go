// Command composecheck checks deploy/compose.yaml and the nginx include files
// without Docker; deploy/check-compose.sh builds and runs it. It checks what
// can be checked from here and says so; see that script for the list.
//
//	composecheck -deploy DIR -herald BIN -nats BIN -gomod FILE
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
)

// service is the part of the Compose specification this file uses. Keys
// outside it are reported, so that a typo (healtcheck:) cannot pass; a new
// legitimate key needs a field here.
type service struct {
	Image           string         `yaml:"image"`
	Build           *build         `yaml:"build"`
	Restart         string         `yaml:"restart"`
	Command         []string       `yaml:"command"`
	Environment     map[string]any `yaml:"environment"`
	Volumes         []string       `yaml:"volumes"`
	Ports           []string       `yaml:"ports"`
	Healthcheck     *healthcheck   `yaml:"healthcheck"`
	StopGracePeriod string         `yaml:"stop_grace_period"`
	DependsOn       any            `yaml:"depends_on"`
}

type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type healthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type checker struct {
	deploy, herald, nats, gomod string
	failed                      int
}

func (c *checker) ok(format string, args ...any) {
	fmt.Printf("  ok    "+format+"\n", args...)
}

func (c *checker) fail(format string, args ...any) {
	c.failed++
	fmt.Printf("  FAIL  "+format+"\n", args...)
}

func main() {
	c := &checker{}
	flag.StringVar(&c.deploy, "deploy", "deploy", "the deploy directory")
	flag.StringVar(&c.herald, "herald", "", "a herald binary built from this tree")
	flag.StringVar(&c.nats, "nats", "", "a nats-server binary at go.mod's version")
	flag.StringVar(&c.gomod, "gomod", "go.mod", "the module's go.mod")
	flag.Parse()
	if c.herald == "" || c.nats == "" {
		fmt.Fprintln(os.Stderr, "composecheck: -herald and -nats are required")
		os.Exit(2)
	}
	c.run()
	if c.failed > 0 {
		fmt.Printf("composecheck: %d check(s) failed\n", c.failed)
		os.Exit(1)
	}
	fmt.Println("composecheck: all checks passed")
}

func (c *checker) run() {
	path := filepath.Join(c.deploy, "compose.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		c.fail("read %s: %v", path, err)
		return
	}
	var top map[string]any
	if err := yaml.Unmarshal(raw, &top); err != nil {
		c.fail("%s is not valid YAML:\n%s", path, yaml.FormatError(err, false, true))
		return
	}
	c.ok("%s parses as YAML (anchors and merge keys resolved)", path)
	for k := range top {
		if !slices.Contains([]string{"name", "services", "volumes", "networks"}, k) && !strings.HasPrefix(k, "x-") {
			c.fail("unknown top-level key %q", k)
		}
	}
	rawServices, _ := top["services"].(map[string]any)
	services := map[string]service{}
	for name, v := range rawServices {
		b, err := yaml.Marshal(v)
		if err != nil {
			c.fail("service %s: %v", name, err)
			continue
		}
		var s service
		if err := yaml.UnmarshalWithOptions(b, &s, yaml.DisallowUnknownField()); err != nil {
			c.fail("service %s: %s (a key this checker does not know: a typo, or extend composecheck)", name, firstLine(err.Error()))
			continue
		}
		services[name] = s
	}
	declaredVolumes, _ := top["volumes"].(map[string]any)

	var natsNames, heraldNames []string
	for name := range services {
		switch {
		case strings.HasPrefix(name, "nats"):
			natsNames = append(natsNames, name)
		case strings.HasPrefix(name, "herald"):
			heraldNames = append(heraldNames, name)
		}
	}
	sort.Strings(natsNames)
	sort.Strings(heraldNames)
	if len(natsNames) != 3 || len(heraldNames) != 3 || services["nginx"].Image == "" {
		c.fail("want services nats1..3, herald1..3 and nginx; have %v", mapsKeys(services))
		return
	}
	c.ok("services: %s, %s, nginx", strings.Join(natsNames, " "), strings.Join(heraldNames, " "))

	c.checkNATS(services, natsNames, declaredVolumes)
	c.checkHerald(services, heraldNames, natsNames)
	c.checkNginx(services, heraldNames)
}

// checkNATS: image version, cluster wiring, volumes, and that nats-server
// (go.mod's version) accepts the flags.
func (c *checker) checkNATS(services map[string]service, names []string, volumes map[string]any) {
	want := goModVersion(c.gomod, "github.com/nats-io/nats-server/v2")
	clusterNames := map[string]bool{}
	for _, name := range names {
		s := services[name]
		img := strings.TrimPrefix(s.Image, "nats:")
		ver, _, _ := strings.Cut(img, "-")
		if want == "" || "v"+ver != want {
			c.fail("%s: image %q, but go.mod pins nats-server %s (what the cluster test and embedded mode run)", name, s.Image, want)
		} else {
			c.ok("%s: image %s matches go.mod's nats-server %s", name, s.Image, want)
		}
		args := s.Command
		if len(args) > 0 && args[0] == "nats-server" {
			args = args[1:]
		}
		flags := parseFlags(args)
		if flags["name"] != name {
			c.fail("%s: --name is %q, want the service name", name, flags["name"])
		}
		if _, js := flags["jetstream"]; !js {
			if _, js = flags["js"]; !js {
				c.fail("%s: JetStream is not enabled (--jetstream)", name)
			}
		}
		clusterNames[flags["cluster_name"]] = true
		var others []string
		for _, o := range names {
			if o != name {
				others = append(others, "nats://"+o+":6222")
			}
		}
		if flags["routes"] != strings.Join(others, ",") {
			c.fail("%s: --routes is %q, want %q", name, flags["routes"], strings.Join(others, ","))
		}
		if flags["cluster"] != "nats://0.0.0.0:6222" {
			c.fail("%s: --cluster is %q, want nats://0.0.0.0:6222", name, flags["cluster"])
		}
		store := flags["store_dir"]
		vol := ""
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if dst == store {
				vol = src
			}
		}
		if vol == "" {
			c.fail("%s: no volume is mounted at --store_dir %q", name, store)
		} else if _, ok := volumes[vol]; !ok {
			c.fail("%s: volume %q is not declared under volumes:", name, vol)
		}
		if s.Healthcheck == nil || !slices.ContainsFunc(s.Healthcheck.Test, func(t string) bool { return strings.Contains(t, ":8222/healthz") }) ||
			flags["http_port"] != "8222" {
			c.fail("%s: want --http_port=8222 and a healthcheck on :8222/healthz", name)
		}
		// nats-server validates flags when it parses them; -t with a
		// minimal config file stops it right after that.
		out, err := c.natsParse(args)
		if err != nil {
			c.fail("%s: nats-server %s rejects the command: %v\n%s", name, want, err, out)
		} else {
			c.ok("%s: nats-server %s accepts the command's flags (routes not dialled, volume not mounted)", name, want)
		}
	}
	if len(clusterNames) != 1 || clusterNames[""] {
		c.fail("the NATS nodes need one common --cluster_name, have %v", mapsKeys(clusterNames))
	} else {
		c.ok("NATS: one cluster, every node routes to the other two, each with its own volume")
	}
}

func (c *checker) natsParse(args []string) (string, error) {
	dir, err := os.MkdirTemp("", "composecheck")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "min.conf")
	if err := os.WriteFile(conf, []byte("server_name: composecheck\n"), 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.nats, append(append([]string{"-c", conf}, args...), "-t")...)
	out, err := cmd.CombinedOutput()
	text := string(out)
	for _, bad := range []string{"flag provided but not defined", "invalid value", "unrecognized command"} {
		if strings.Contains(text, bad) {
			return text, errors.New(bad)
		}
	}
	if err != nil {
		return text, err
	}
	if !strings.Contains(text, "is valid") {
		return text, errors.New("no \"is valid\" from nats-server -t")
	}
	return text, nil
}

// checkHerald: build, flags accepted by this tree's herald, NATS URLs, the
// healthcheck, and the stop grace period against the drain.
func (c *checker) checkHerald(services map[string]service, names, natsNames []string) {
	help := c.heraldHelp()
	for _, name := range names {
		s := services[name]
		if s.Build == nil {
			c.fail("%s: no build: section (it must be built from the repository's Dockerfile)", name)
		} else {
			df := filepath.Join(c.deploy, s.Build.Context, orDefault(s.Build.Dockerfile, "Dockerfile"))
			if _, err := os.Stat(df); err != nil {
				c.fail("%s: build context %q has no %s", name, s.Build.Context, orDefault(s.Build.Dockerfile, "Dockerfile"))
			}
		}
		flags := heraldSettings(s)
		var wantURLs []string
		for _, n := range natsNames {
			wantURLs = append(wantURLs, "nats://"+n+":4222")
		}
		if flags["nats-url"] != strings.Join(wantURLs, ",") {
			c.fail("%s: --nats-url is %q, want every NATS node: %q", name, flags["nats-url"], strings.Join(wantURLs, ","))
		}
		if flags["stream-replicas"] != strconv.Itoa(len(natsNames)) {
			c.fail("%s: --stream-replicas is %q, want %d (one per NATS node)", name, flags["stream-replicas"], len(natsNames))
		}
		if err := c.heraldAccepts(s); err != nil {
			c.fail("%s: this tree's herald rejects the command: %v", name, err)
		} else {
			c.ok("%s: this tree's herald accepts the command (all values validated; NATS not dialled)", name)
		}
		deps := dependsOn(s.DependsOn)
		for _, n := range natsNames {
			if _, ok := deps[n]; !ok {
				c.fail("%s: does not depend on %s", name, n)
			}
		}
		// SIGTERM drains: the container must get the longest stop the
		// README documents before Docker's SIGKILL: drain-timeout +
		// 2 × shutdown-timeout + 15s, and the second past it after
		// which herald exits anyway.
		need := stopBound(flags, help)
		grace, err := time.ParseDuration(s.StopGracePeriod)
		if err != nil || grace < need {
			c.fail("%s: stop_grace_period %q is below drain-timeout + 2 × shutdown-timeout + 16s (%s)", name, s.StopGracePeriod, need)
		} else {
			c.ok("%s: stop_grace_period %s covers drain-timeout + 2 × shutdown-timeout + 16s (%s)", name, grace, need)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) < 2 {
			c.fail("%s: no healthcheck", name)
		}
	}
	// The healthcheck runs inside a distroless image: only /herald exists.
	hc := services[names[0]].Healthcheck
	if hc != nil && len(hc.Test) >= 2 {
		c.checkHeraldHealthcheck(hc.Test, services[names[0]])
	}
}

// heraldSettings is a replica's configuration by flag name: its HERALD_*
// environment, overridden by --flags of its command (as herald reads them).
func heraldSettings(s service) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if name, ok := strings.CutPrefix(k, "HERALD_"); ok {
			out[strings.ReplaceAll(strings.ToLower(name), "_", "-")] = interpolate(fmt.Sprint(v))
		}
	}
	for k, v := range parseFlags(s.Command) {
		out[k] = v
	}
	return out
}

// composeEnv is the service's environment as KEY=value, interpolated as
// Compose would (see interpolate).
func composeEnv(s service) []string {
	var env []string
	for k, v := range s.Environment {
		env = append(env, k+"="+interpolate(fmt.Sprint(v)))
	}
	sort.Strings(env)
	return env
}

// variableRef is a Compose interpolation: ${NAME}, ${NAME:-default},
// ${NAME-default}, ${NAME:?message}, ${NAME?message}; or $$.
var variableRef = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate substitutes a value's variables as Compose does, with every
// variable unset (the file as shipped, whatever this shell holds): a
// default is used; a required one (?) gets a stand-in the check can run
// with, long enough for a secret; others become empty.
func interpolate(v string) string {
	return variableRef.ReplaceAllStringFunc(v, func(ref string) string {
		if ref == "$$" {
			return "$"
		}
		m := variableRef.FindStringSubmatch(ref)
		switch {
		case strings.HasSuffix(m[2], "-"):
			return m[3]
		case strings.HasSuffix(m[2], "?"):
			return "composecheck-stand-in-for-" + m[1] + "-0123456789abcdef"
		}
		return ""
	})
}

type heraldHelp string

func (c *checker) heraldHelp() heraldHelp {
	out, _ := exec.Command(c.herald, "-h").CombinedOutput()
	return heraldHelp(out)
}

// fixedStopSteps is what a stop takes beyond the configured timeouts at
// most, as the README counts it ("+ 15 s": giving up on connections and
// executions held by resolvers 2 s, presence 5 s, the relay's flush 2 s,
// draining the connection 6 s), plus the second past that bound at which
// herald gives up on a stop and exits.
const fixedStopSteps = 15*time.Second + time.Second

// stopBound is the longest a SIGTERMed replica may take to exit, as the
// README documents it: --drain-timeout + 2 × --shutdown-timeout + 15s (and
// the second herald allows past it), with
// the service's own values where it sets them.
func stopBound(flags map[string]string, help heraldHelp) time.Duration {
	value := func(name string) time.Duration {
		if v, ok := flags[name]; ok {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
		return help.defaultDuration(name)
	}
	return value("drain-timeout") + 2*value("shutdown-timeout") + fixedStopSteps
}

// defaultDuration reads "(default 10s)" of flag name from herald -h; 0 if
// the flag does not exist.
func (h heraldHelp) defaultDuration(name string) time.Duration {
	re := regexp.MustCompile(`(?m)^\s+-` + regexp.QuoteMeta(name) + ` duration\n(?:.*\n)*?.*\(default ([0-9a-z.]+)\)`)
	m := re.FindStringSubmatch(string(h))
	if m == nil {
		return 0
	}
	d, _ := time.ParseDuration(m[1])
	return d
}

// heraldAccepts runs herald with the service's environment and command,
// NATS pointed at a closed loopback port and HTTP on a free loopback port
// (flags, which win over the environment): a valid configuration gets as far
// as dialling NATS and exits 1 with "connect to NATS"; an invalid one exits
// 2 at once.
func (c *checker) heraldAccepts(s service) error {
	args := s.Command
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	closed := l.Addr().String()
	l.Close()
	var cmdArgs []string
	for _, a := range args {
		if strings.HasPrefix(a, "--nats-url=") || strings.HasPrefix(a, "--addr=") {
			continue
		}
		cmdArgs = append(cmdArgs, a)
	}
	cmdArgs = append(cmdArgs, "--nats-url=nats://"+closed, "--addr=127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.herald, cmdArgs...)
	cmd.Env = append(cleanEnv(), composeEnv(s)...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 && bytes.Contains(out, []byte("connect to NATS")) {
		return nil
	}
	return fmt.Errorf("%v: %s", err, oneLine(string(out)))
}

// checkHeraldHealthcheck runs the healthcheck command, with the replica's
// environment, against a ready Herald (embedded NATS, loopback) and against
// nothing: it must pass and fail respectively. HERALD_ADDR is set to the
// local Herald's address in place of the container's; a healthcheck that
// does not follow HERALD_ADDR would probe the wrong port in the container
// too whenever the address is configured.
func (c *checker) checkHeraldHealthcheck(test []string, s service) {
	if test[0] != "CMD" || test[1] != "/herald" {
		c.fail("herald healthcheck %q: the image is distroless; only [\"CMD\", \"/herald\", ...] can run in it", test)
		return
	}
	args := test[2:]
	dir, err := os.MkdirTemp("", "composecheck-herald")
	if err != nil {
		c.fail("temp dir: %v", err)
		return
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.fail("free port: %v", err)
		return
	}
	addr := l.Addr().String()
	l.Close()

	probe := func() (int, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, c.herald, args...)
		var env []string
		for _, e := range composeEnv(s) {
			if !strings.HasPrefix(e, "HERALD_ADDR=") {
				env = append(env, e)
			}
		}
		cmd.Env = append(append(cleanEnv(), env...), "HERALD_ADDR="+addr)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		return -1, err.Error()
	}

	// Against nothing: must fail, and not because of its arguments.
	code, out := probe()
	if code == 2 || strings.Contains(out, "unexpected argument") || strings.Contains(out, "invalid configuration") {
		c.fail("healthcheck %q with the replica's environment exits %d, so every replica would stay unhealthy: %s", test, code, oneLine(out))
		return
	}
	if code == 0 {
		c.fail("herald healthcheck %q passes with no Herald listening", test)
		return
	}

	cmd := exec.Command(c.herald, "--addr", addr, "--data-dir", dir, "--log-level", "warn")
	cmd.Env = cleanEnv()
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		c.fail("start herald: %v", err)
		return
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			c.fail("a local herald did not become ready within 20s:\n%s", logs.String())
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, out := probe(); code != 0 {
		c.fail("herald healthcheck %q fails against a ready Herald (exit %d): %s", test, code, out)
		return
	}
	c.ok("herald healthcheck %q: passes against a ready Herald, fails with none listening", test)
}

// checkNginx: the mounts, the published port and the upstream names.
func (c *checker) checkNginx(services map[string]service, heraldNames []string) {
	s := services["nginx"]
	mounts := map[string]string{}
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[filepath.Clean(filepath.Join(c.deploy, parts[0]))] = parts[1]
		}
	}
	conf := mounts[filepath.Clean(filepath.Join(c.deploy, "nginx.conf"))]
	if conf == "" {
		c.fail("nginx: deploy/nginx.conf is not mounted")
		return
	}
	confDir := filepath.Dir(conf)
	for _, inc := range []string{"upstreams.conf", "listen.conf"} {
		local := filepath.Clean(filepath.Join(c.deploy, inc))
		if _, err := os.Stat(local); err != nil {
			c.fail("nginx: %s is missing", local)
		}
		if mounts[local] != confDir+"/"+inc {
			c.fail("nginx: %s must be mounted at %s (nginx.conf includes it relative to itself), is at %q", inc, confDir+"/"+inc, mounts[local])
		}
	}
	// listen.conf's port is the published container port.
	listen := readLines(filepath.Join(c.deploy, "listen.conf"))
	var listenPorts []string
	for _, l := range listen {
		if m := regexp.MustCompile(`^listen\s+(?:[\d.]+:)?(\d+)\b`).FindStringSubmatch(l); m != nil {
			listenPorts = append(listenPorts, m[1])
		}
	}
	published := map[string]bool{}
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		published[parts[len(parts)-1]] = true
	}
	if len(listenPorts) != 1 || !published[listenPorts[0]] {
		c.fail("nginx: listen.conf listens on %v but the service publishes %v", listenPorts, s.Ports)
	} else {
		c.ok("nginx: listens on %s, published as %v", listenPorts[0], s.Ports)
	}
	// upstreams.conf names exactly the Herald services, on their port, and
	// again as backups, if at all.
	var hosts, backups []string
	for _, l := range readLines(filepath.Join(c.deploy, "upstreams.conf")) {
		if m := regexp.MustCompile(`^server\s+([^\s:;]+):(\d+)`).FindStringSubmatch(l); m != nil {
			if port := heraldPort(services[m[1]]); m[2] != port {
				c.fail("upstreams.conf: %s:%s, but %s listens on %s", m[1], m[2], m[1], port)
			}
			if regexp.MustCompile(`\sbackup[\s;]`).MatchString(l) {
				backups = append(backups, m[1])
			} else {
				hosts = append(hosts, m[1])
			}
		}
	}
	sort.Strings(hosts)
	sort.Strings(backups)
	switch {
	case !slices.Equal(hosts, heraldNames):
		c.fail("upstreams.conf names %v, compose.yaml has Herald services %v", hosts, heraldNames)
	case len(backups) > 0 && !slices.Equal(backups, heraldNames):
		c.fail("upstreams.conf's backups are %v, compose.yaml has Herald services %v", backups, heraldNames)
	default:
		c.ok("upstreams.conf names exactly the Herald services %v, on the port each listens on (backups: %v)", hosts, backups)
	}
	m := regexp.MustCompile(`^nginx:(\d+)\.(\d+)`).FindStringSubmatch(s.Image)
	if m == nil {
		c.fail("nginx: image %q has no version to check against `resolve` (needs 1.27.3 or later)", s.Image)
	} else if major, _ := strconv.Atoi(m[1]); major == 1 {
		if minor, _ := strconv.Atoi(m[2]); minor < 28 {
			c.fail("nginx: image %q predates `resolve` on upstream servers (1.27.3; use 1.28 or later)", s.Image)
		}
	}
}

// heraldPort is the port of the replica's --addr/HERALD_ADDR, or herald's
// default 8080.
func heraldPort(s service) string {
	if a := heraldSettings(s)["addr"]; a != "" {
		if _, p, err := net.SplitHostPort(a); err == nil {
			return p
		}
	}
	return "8080"
}

// parseFlags reads --name=value, --name value and --flag (no value) from
// args, without knowing the program's flags: "--a --b" is two value-less flags.
func parseFlags(args []string) map[string]string {
	out := map[string]string{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimLeft(a, "-")
		if k, v, ok := strings.Cut(a, "="); ok {
			out[k] = v
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			out[a] = args[i+1]
			i++
			continue
		}
		out[a] = ""
	}
	return out
}

func dependsOn(v any) map[string]bool {
	out := map[string]bool{}
	switch d := v.(type) {
	case []any:
		for _, x := range d {
			out[fmt.Sprint(x)] = true
		}
	case map[string]any:
		for k := range d {
			out[k] = true
		}
	}
	return out
}

func goModVersion(gomod, module string) string {
	for _, l := range readLines(gomod) {
		f := strings.Fields(strings.TrimPrefix(l, "require "))
		if len(f) >= 2 && f[0] == module {
			return f[1]
		}
	}
	return ""
}

func readLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// cleanEnv is the environment without HERALD_* variables.
func cleanEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "HERALD_") {
			env = append(env, e)
		}
	}
	return env
}

func mapsKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// oneLine joins the non-empty lines of s with " / ".
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " / ")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
