package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkThroughputProcesses is the throughput comparison with every
// proxy in a process of its own, as they run in production: goproxy alone
// with its transport tuned (testdata/goproxytuned) and the sessionproxy
// program (sessions, cookie injection, default rules, interception on, a
// pool filled to 1,000 sessions by a warm-up round), also with sessions that
// never wear out. The origin and the load (32 keep-alive connections, 1 KiB
// bodies) run in the benchmark's process. The proxies are loaded in turns,
// benchRound requests each, for b.N rounds; it reports each one's median
// req/s, its median ratio to goproxy in the same round, the CPU its process
// spent per request (from /proc, in 10 ms ticks), the CPU this process (the
// origin and the load) spent per request meanwhile, and how many cores the
// two kept busy together (near 2 here: the machine is saturated, so CPU per
// request decides the rate):
//
//	go test -run '^$' -bench 'ThroughputProcesses' -benchtime 7x ./proxy/
//
// BenchmarkThroughput runs the same contenders inside one process, which
// is handier for profiles but makes them share one garbage collector: the
// idle connections and goroutines of a pool of 1,000 sessions are then
// scanned while every contender is loaded.
func BenchmarkThroughputProcesses(b *testing.B) {
	origin, tlsOrigin, _, originCAFile := benchOrigins(b)
	dir := b.TempDir()
	spBin := buildProgram(b, filepath.Join(dir, "sessionproxy"), "..")
	gpBin := buildProgram(b, filepath.Join(dir, "goproxytuned"), "./testdata/goproxytuned")
	for _, scheme := range []string{"http", "https"} {
		target := origin.URL
		if scheme == "https" {
			target = tlsOrigin.URL
		}
		b.Run(scheme, func(b *testing.B) {
			type contender struct {
				name   string
				proc   *childProxy
				rates  []float64
				ratios []float64
				cpu    time.Duration
				self   time.Duration // this process's CPU (origin and load) while it was loaded
				wall   time.Duration
			}
			gpDir := b.TempDir()
			cs := []*contender{{name: "goproxy-tuned", proc: startChildProxy(b, gpBin, filepath.Join(gpDir, "ca.pem"),
				"-ca-dir", gpDir, "-origin-ca", originCAFile)}}
			for _, variant := range []string{"sessionproxy", "sessionproxy-no-wear-out"} {
				data := b.TempDir()
				session := ""
				if variant == "sessionproxy-no-wear-out" {
					// Sessions that outlive the run: what a request costs
					// apart from the connections of new sessions.
					session = "  session:\n    max_usage_count: 1073741824\n"
				}
				cfg := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_listen: \"\"\nlog_format: json\ndata_dir: %s\n"+
					"pool:\n  persist_interval: 1h\n%smitm:\n  upstream_ca: [%s]\n", data, session, originCAFile)
				path := filepath.Join(data, "config.yaml")
				if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
					b.Fatal(err)
				}
				cs = append(cs, &contender{name: variant, proc: startChildProxy(b, spBin, filepath.Join(data, "ca.pem"), "-config", path)})
			}
			clients := make([]*http.Client, len(cs))
			for i, c := range cs {
				clients[i] = loadClient(b, c.proc.addr, certPoolOf(b, c.proc.caPEM), target)
				load(b, clients[i], target, benchRound) // warm-up: fills the pool, opens connections
			}
			b.ResetTimer()
			for range b.N {
				for i, c := range cs {
					cpu, self, start := c.proc.cpu(b), processCPU(), time.Now()
					rate := load(b, clients[i], target, benchRound)
					c.cpu += c.proc.cpu(b) - cpu
					c.self += processCPU() - self
					c.wall += time.Since(start)
					c.rates = append(c.rates, rate)
					c.ratios = append(c.ratios, rate/cs[0].rates[len(cs[0].rates)-1])
				}
			}
			b.StopTimer()
			for _, c := range cs {
				b.ReportMetric(median(c.rates), c.name+"-req/s")
				b.ReportMetric(float64(c.cpu.Microseconds())/float64(b.N*benchRound), c.name+"-cpu-µs/req")
				b.ReportMetric(float64(c.self.Microseconds())/float64(b.N*benchRound), c.name+"-bench-cpu-µs/req")
				b.ReportMetric(float64((c.cpu+c.self).Microseconds())/float64(c.wall.Microseconds()), c.name+"-cores")
				if c != cs[0] {
					b.ReportMetric(median(c.ratios), c.name+"/goproxy")
				}
			}
		})
	}
}

// buildProgram builds the Go package pkg (relative to this directory) into
// bin and returns bin.
func buildProgram(b *testing.B, bin, pkg string) string {
	out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput()
	if err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// childProxy is a proxy program running as a child process.
type childProxy struct {
	addr  string
	pid   int
	caPEM []byte
}

// startChildProxy starts bin with args, waits for the JSON log line naming
// where it listens ({"proxy": ADDR, ...}) and reads the CA it intercepts
// with from caPath. It is stopped (SIGINT) when b ends.
func startChildProxy(b *testing.B, bin, caPath string, args ...string) *childProxy {
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	sc := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && sc.Scan() {
		var line struct {
			Proxy string `json:"proxy"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil {
			addr = line.Proxy
		}
	}
	if addr == "" {
		b.Fatalf("%s never said where it listens (%v)", filepath.Base(bin), sc.Err())
	}
	go io.Copy(io.Discard, stderr)
	caPEM, err := os.ReadFile(caPath)
	if err != nil {
		b.Fatal(err)
	}
	return &childProxy{addr: addr, pid: cmd.Process.Pid, caPEM: caPEM}
}

// cpu returns the CPU time the child has used.
func (c *childProxy) cpu(b *testing.B) time.Duration {
	t, ok := procCPU(c.pid)
	if !ok {
		b.Fatalf("no CPU time for process %d", c.pid)
	}
	return t
}

// procCPU returns the CPU time (user and system) process pid has used, from
// /proc/PID/stat, in clock ticks of 10 ms.
func procCPU(pid int) (time.Duration, bool) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.Atoi(f[11])
	stime, err2 := strconv.Atoi(f[12])
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}
