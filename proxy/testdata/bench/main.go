// Command bench measures the proxy as a user would: every part in a process
// of its own. The origin (./origin), goproxy with its transport tuned
// (../goproxytuned) and sessionproxy (the repository's program, a pool of
// 1,000 sessions, defaults otherwise) run side by side; the load comes from
// wrk (plain HTTP: absolute-form GETs through keep-alive connections) and
// from ./httpsload (HTTPS: CONNECT, then TLS trusting the proxy's CA). For
// each scenario the proxies are loaded in turns, one round of -d each, for
// -rounds rounds, after a warm-up round; it prints each proxy's median
// req/s, its median ratio to goproxy in the same round, the CPU its process
// used per request (utime+stime from /proc/PID/stat over the round, divided
// by the requests; stime alone beside it), for sessionproxy the bytes it
// allocated per request (runtime TotalAlloc read from its -pprof endpoint,
// /debug/pprof/allocs?debug=1, before and after the round), and the TCP
// segments the machine sent per request (/proc/net/snmp: both sides of the
// proxy, every part being on loopback) and, of them, the ACKs its
// delayed-ACK timer sent alone (/proc/net/netstat). Run it by hand from the
// repository's root, not in CI; it needs wrk on PATH:
//
//	go run ./proxy/testdata/bench [-rounds 7] [-d 5s] [-c 32] [-keep] [-base BIN]
//
// -base adds a second sessionproxy program (say, built from main with
// -pprof) to compare before and after in one sitting; -keep gives sessions
// that outlive the run (max_usage_count: 2^30) instead of the default 50.
// -fingerprints go,mirror,chrome runs one sessionproxy per fingerprint mode
// instead of one on the default, and adds each one's median ratio to the
// first of them in the same round (the "vs-first" column). -scopes
// site,global does the same for pool.scope, and -uses 50,1073741824 for
// pool.session.max_usage_count (what wearing sessions out costs, beside
// sessions that outlive the run). The scenario sites-12 spreads
// the load over -sites sites (the origin on as many loopback addresses, an
// IP literal being a site of its own) with pools of -pool sessions:
//
//	go run ./proxy/testdata/bench -scenarios sites-12 -sites 1000 -pool 10 -scopes site,global
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	rounds := flag.Int("rounds", 7, "rounds per scenario (each proxy loaded once per round)")
	dur := flag.Duration("d", 5*time.Second, "length of one proxy's turn in a round")
	conns := flag.Int("c", 32, "keep-alive connections of the load")
	keep := flag.Bool("keep", false, "sessions that outlive the run (max_usage_count: 2^30)")
	base := flag.String("base", "", "a second sessionproxy `program` to compare (it must have -pprof)")
	only := flag.String("scenarios", "http-12,http-1k,https-1k", "comma-separated scenarios to run")
	fingerprints := flag.String("fingerprints", "", "comma-separated fingerprint modes, one sessionproxy each (default: one on the default mode)")
	scopes := flag.String("scopes", "", "comma-separated pool.scope values, one sessionproxy each (default: one on the default scope)")
	uses := flag.String("uses", "", "comma-separated pool.session.max_usage_count values, one sessionproxy each (default: one on -keep's or the default)")
	nSites := flag.Int("sites", 1000, "sites of the sites-12 scenario")
	poolSize := flag.Int("pool", 1000, "pool.max_pool_size of every sessionproxy")
	flag.Parse()
	dir, err := os.MkdirTemp("", "sessionproxy-bench-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bins := map[string]string{}
	for name, pkg := range map[string]string{"sessionproxy": ".", "goproxytuned": "./proxy/testdata/goproxytuned",
		"origin": "./proxy/testdata/bench/origin", "httpsload": "./proxy/testdata/bench/httpsload"} {
		bins[name] = filepath.Join(dir, "bin-"+name)
		if out, err := exec.Command("go", "build", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			log.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			p.Process.Signal(os.Interrupt)
			p.Wait()
		}
	}()
	start := func(bin string, args ...string) (*exec.Cmd, map[string]string) {
		cmd, first := startProcess(bin, args...)
		procs = append(procs, cmd)
		return cmd, first
	}
	originCA := filepath.Join(dir, "origin")
	for _, d := range []string{originCA, filepath.Join(dir, "goproxy")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			log.Fatal(err)
		}
	}
	originArgs := []string{"-ca-dir", originCA}
	if strings.Contains(*only, "sites-") {
		originArgs = append(originArgs, "-sites", strconv.Itoa(*nSites))
	}
	_, addrs := start(bins["origin"], originArgs...)
	gpDir := filepath.Join(dir, "goproxy")
	gp, gpAddr := start(bins["goproxytuned"], "-ca-dir", gpDir, "-origin-ca", filepath.Join(originCA, "ca.pem"))
	cs := []*contender{{name: "goproxy-tuned", cmd: gp, addr: gpAddr["proxy"], ca: filepath.Join(gpDir, "ca.pem")}}
	progs := sessionproxies(bins["sessionproxy"], *fingerprints, *scopes, *uses, *base)
	for i := 0; i < len(progs); i += 3 {
		data := filepath.Join(dir, progs[i])
		cfg := writeConfig(data, filepath.Join(originCA, "ca.pem"), *keep, *poolSize, progs[i+2])
		cmd, logs := start(progs[i+1], "-config", cfg, "-pprof", "127.0.0.1:0")
		cs = append(cs, &contender{name: progs[i], cmd: cmd, addr: logs["proxy"], pprof: logs["pprof"],
			ca: filepath.Join(data, "ca.pem")})
	}
	fmt.Printf("rounds %d of %v each, %d connections, keep sessions %v, pools of %d\n", *rounds, *dur, *conns, *keep, *poolSize)
	for _, sc := range strings.Split(*only, ",") {
		target := "http://" + addrs["http"]
		if strings.HasPrefix(sc, "https") {
			target = "https://" + addrs["https"]
		}
		if strings.HasPrefix(sc, "sites") {
			_, port, _ := strings.Cut(addrs["http"], ":")
			target = "sites://" + strconv.Itoa(*nSites) + ":" + port
		}
		target += "/" + sc[strings.LastIndexByte(sc, '-')+1:]
		for _, c := range cs {
			c.reset()
		}
		for r := -1; r < *rounds; r++ { // round -1 warms up: fills the pool, opens connections
			for i, c := range cs {
				res := c.round(bins["httpsload"], target, *conns, *dur)
				if r >= 0 {
					c.keepRound(res, i == 0, cs[0].last, i == 1, cs[1].last)
				}
			}
		}
		fmt.Printf("\n%s (%s)\n%-28s %10s %8s %9s %10s %10s %10s %8s %8s %8s\n", sc, target, "proxy", "req/s", "ratio", "vs-first", "cpu-µs/req", "sys-µs/req", "alloc-B/req", "segs/req", "dack/req", "errors")
		for _, c := range cs {
			fmt.Printf("%-28s %10.0f %8.2f %9.2f %10.1f %10.1f %10.0f %8.2f %8.2f %8d\n", c.name, median(c.rates), median(c.ratios),
				median(c.firsts), median(c.cpus), median(c.syss), median(c.allocs), median(c.segs), median(c.dacks), c.errors)
		}
	}
}

// sessionproxies lists the sessionproxies to run, three strings each: name,
// program, config lines of its own (see writeConfig). bin is the
// repository's program; fingerprints, scopes and uses (comma-separated) run
// one per value, base adds that program.
func sessionproxies(bin, fingerprints, scopes, uses, base string) []string {
	progs := []string{"sessionproxy", bin, ""}
	switch {
	case fingerprints != "":
		progs = nil
		for _, fp := range strings.Split(fingerprints, ",") {
			progs = append(progs, "sessionproxy-"+fp, bin, "fingerprint: "+fp+"\n")
		}
	case scopes != "":
		progs = nil
		for _, sc := range strings.Split(scopes, ",") {
			progs = append(progs, "sessionproxy-"+sc, bin, "scope: "+sc+"\n")
		}
	case uses != "":
		progs = nil
		for _, n := range strings.Split(uses, ",") {
			progs = append(progs, "sessionproxy-uses-"+n, bin, "max_usage_count: "+n+"\n")
		}
	}
	if base != "" {
		progs = append(progs, "sessionproxy-base", base, "")
	}
	return progs
}

// writeConfig writes sessionproxy's config into data (made if missing) and
// returns its path: pools of poolSize sessions, interception trusting
// originCA, defaults otherwise; keep gives sessions that outlive the run;
// own holds more lines: "fingerprint: X" at the top level, "scope: X" in
// the pool section, "max_usage_count: N" in its session section (instead of
// keep's).
func writeConfig(data, originCA string, keep bool, poolSize int, own string) string {
	if err := os.MkdirAll(data, 0o700); err != nil {
		log.Fatal(err)
	}
	session := ""
	if keep {
		session = "  session:\n    max_usage_count: 1073741824\n"
	}
	if strings.HasPrefix(own, "max_usage_count: ") {
		session = "  session:\n    " + own
	}
	if strings.HasPrefix(own, "scope: ") {
		session += "  " + own
	}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: %s\n"+
		"pool:\n  max_pool_size: %d\n  persist_interval: 1h\n%smitm:\n  upstream_ca: [%s]\n",
		data, poolSize, session, originCA)
	if strings.HasPrefix(own, "fingerprint: ") {
		cfg += own
	}
	path := filepath.Join(data, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		log.Fatal(err)
	}
	return path
}

// contender is one proxy process and what its rounds measured.
type contender struct {
	name, addr, ca, pprof string
	cmd                   *exec.Cmd
	last                  float64 // req/s of the latest round
	rates, ratios, cpus   []float64
	syss                  []float64 // the system part of cpus
	firsts                []float64 // req/s over the first sessionproxy's in the same round
	allocs                []float64
	segs                  []float64 // TCP segments sent per request, the whole machine's
	dacks                 []float64 // of them, delayed ACKs sent by the timer
	errors                int64
}

type result struct {
	requests, errors int64
	seconds          float64
	cpu, sys         time.Duration // the process's CPU time over the round, and its system part
	alloc            float64       // bytes; 0 when not known
	segs             float64       // TCP segments the machine sent over the round
	dacks            float64       // of them, ACKs its delayed-ACK timer sent
}

func (c *contender) reset() {
	c.rates, c.ratios, c.firsts, c.cpus, c.syss, c.allocs, c.segs, c.dacks, c.errors = nil, nil, nil, nil, nil, nil, nil, nil, 0
}

// round loads the proxy once and measures it.
func (c *contender) round(httpsload, target string, conns int, d time.Duration) result {
	pid := c.cmd.Process.Pid
	alloc0, segs0, dacks0 := c.totalAlloc(), tcpOutSegs(), tcpDelayedACKs()
	user0, sys0 := procCPU(pid)
	var res result
	if strings.HasPrefix(target, "https") {
		res = runHTTPSLoad(httpsload, c.addr, c.ca, target, conns, d)
	} else {
		res = runWrk(c.addr, target, conns, d)
	}
	user1, sys1 := procCPU(pid)
	res.cpu, res.sys = user1+sys1-user0-sys0, sys1-sys0
	res.segs = float64(tcpOutSegs() - segs0)
	res.dacks = float64(tcpDelayedACKs() - dacks0)
	if c.pprof != "" {
		res.alloc = float64(c.totalAlloc() - alloc0)
	}
	return res
}

// keepRound keeps a round's result; goproxyRate and firstRate are the
// req/s of goproxy and of the first sessionproxy in the round (isGoproxy,
// isFirst: this is that one).
func (c *contender) keepRound(res result, isGoproxy bool, goproxyRate float64, isFirst bool, firstRate float64) {
	rate := float64(res.requests) / res.seconds
	c.last = rate
	if isGoproxy {
		goproxyRate = rate
	}
	if isFirst {
		firstRate = rate
	}
	c.rates = append(c.rates, rate)
	c.ratios = append(c.ratios, rate/goproxyRate)
	if !isGoproxy {
		c.firsts = append(c.firsts, rate/firstRate)
	}
	if res.requests > 0 {
		c.cpus = append(c.cpus, float64(res.cpu.Microseconds())/float64(res.requests))
		c.syss = append(c.syss, float64(res.sys.Microseconds())/float64(res.requests))
		c.allocs = append(c.allocs, res.alloc/float64(res.requests))
		c.segs = append(c.segs, res.segs/float64(res.requests))
		c.dacks = append(c.dacks, res.dacks/float64(res.requests))
	}
	c.errors += res.errors
}

var totalAllocLine = regexp.MustCompile(`# TotalAlloc = (\d+)`)

// totalAlloc returns the bytes the process has allocated so far, from the
// runtime.MemStats its pprof endpoint prints with the allocs profile.
func (c *contender) totalAlloc() uint64 {
	if c.pprof == "" {
		return 0
	}
	resp, err := http.Get("http://" + c.pprof + "/debug/pprof/allocs?debug=1")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := totalAllocLine.FindSubmatch(body)
	if m == nil {
		log.Fatalf("%s: no TotalAlloc in its allocs profile", c.name)
	}
	n, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return n
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in ([\d.]+)(m?s)`)
	wrkErrors   = regexp.MustCompile(`(?:Non-2xx or 3xx responses: (\d+))|(?:Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+))`)
)

// runWrk sends absolute-form GETs for target through the proxy at addr.
func runWrk(addr, target string, conns int, d time.Duration) result {
	script, err := os.CreateTemp("", "bench-*.lua")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(script.Name())
	if rest, ok := strings.CutPrefix(target, "sites://"); ok {
		// sites://N:PORT/PATH: each request to the next of N sites.
		n, rest, _ := strings.Cut(rest, ":")
		port, path, _ := strings.Cut(rest, "/")
		fmt.Fprintf(script, `local n, i = %s, 0
function setup(thread) thread:set("first", math.random(0, n - 1)) end
function init() i = first end
function request()
  i = (i + 1) %% n
  local k = i + 1
  local host = string.format("127.1.%%d.%%d:%s", math.floor(k / 250), k %% 250 + 1)
  return wrk.format("GET", "http://" .. host .. "/%s", {Host = host})
end
`, n, port, path)
	} else {
		host := strings.TrimPrefix(target, "http://")
		host = host[:strings.IndexByte(host, '/')]
		fmt.Fprintf(script, "wrk.path = %q\nwrk.headers[\"Host\"] = %q\n", target, host)
	}
	script.Close()
	out, err := exec.Command("wrk", "-t2", "-c"+strconv.Itoa(conns), "-d"+d.String(), "-s", script.Name(),
		"http://"+addr+"/").CombinedOutput()
	if err != nil {
		log.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		log.Fatalf("wrk said:\n%s", out)
	}
	var res result
	res.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
	res.seconds, _ = strconv.ParseFloat(string(m[2]), 64)
	if string(m[3]) == "m" {
		res.seconds *= 60
	}
	for _, e := range wrkErrors.FindAllSubmatch(out, -1) {
		for _, n := range e[1:] {
			k, _ := strconv.ParseInt(string(n), 10, 64)
			res.errors += k
		}
	}
	res.requests -= res.errors
	return res
}

// runHTTPSLoad runs httpsload against the proxy at addr.
func runHTTPSLoad(bin, addr, ca, target string, conns int, d time.Duration) result {
	out, err := exec.Command(bin, "-proxy", addr, "-proxy-ca", ca, "-url", target,
		"-c", strconv.Itoa(conns), "-d", d.String()).Output()
	if err != nil {
		log.Fatalf("httpsload: %v\n%s", err, out)
	}
	var r struct {
		Requests, Errors int64
		Seconds          float64
	}
	if err := json.Unmarshal(out, &r); err != nil {
		log.Fatalf("httpsload said %q: %v", out, err)
	}
	return result{requests: r.Requests, errors: r.Errors, seconds: r.Seconds}
}

// startProcess starts bin and returns it with the first JSON line of its
// output (stdout or stderr) that names "proxy" or "http", merged with any
// earlier line naming "pprof". The rest of its output is discarded.
func startProcess(bin string, args ...string) (*exec.Cmd, map[string]string) {
	cmd := exec.Command(bin, args...)
	// log.Fatal skips the deferred stops: the children die with this process.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, err := cmd.StdoutPipe()
	if err != nil {
		log.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	sc := bufio.NewScanner(pr)
	got := map[string]string{}
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		for _, k := range []string{"proxy", "http", "https", "pprof"} {
			if v, ok := line[k].(string); ok {
				got[k] = v
			}
		}
		if got["proxy"] != "" || got["http"] != "" {
			break
		}
	}
	if got["proxy"] == "" && got["http"] == "" {
		log.Fatalf("%s never said where it listens", filepath.Base(bin))
	}
	go io.Copy(io.Discard, pr)
	return cmd, got
}

// procCPU returns the user and system CPU time process pid has used, from
// /proc/PID/stat, in clock ticks of 10 ms.
func procCPU(pid int) (user, sys time.Duration) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		log.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime) * 10 * time.Millisecond, time.Duration(stime) * 10 * time.Millisecond
}

// tcpOutSegs returns the TCP segments the machine has sent so far
// (/proc/net/snmp, Tcp OutSegs): with every part on loopback, a round's
// count is the segments of its requests both ways, origin side and client
// side.
func tcpOutSegs() uint64 { return procNetCounter("/proc/net/snmp", "Tcp", "OutSegs") }

// tcpDelayedACKs returns the ACKs the machine's delayed-ACK timer has sent
// so far (/proc/net/netstat, TcpExt DelayedACKs): each one a segment of
// its own, for data no reply carried an ACK for in time.
func tcpDelayedACKs() uint64 { return procNetCounter("/proc/net/netstat", "TcpExt", "DelayedACKs") }

// procNetCounter returns the counter name of the group (a line of names,
// then one of values, both starting "group: ") in file.
func procNetCounter(file, group, name string) uint64 {
	raw, err := os.ReadFile(file)
	if err != nil {
		log.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(raw)) {
		rest, ok := strings.CutPrefix(line, group+": ")
		if !ok {
			continue
		}
		if names == nil {
			names = strings.Fields(rest)
			continue
		}
		for i, v := range strings.Fields(rest) {
			if i < len(names) && names[i] == name {
				n, _ := strconv.ParseUint(v, 10, 64)
				return n
			}
		}
	}
	log.Fatalf("%s: no %s %s", file, group, name)
	return 0
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}
