package sessionpooltest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// Server is one redis-server process.
type Server struct {
	Addr string // host:port on loopback
	dir  string
	bin  string
	args []string
	cmd  *exec.Cmd
	exit chan error // the process's exit, once
}

// URL returns the server's redis:// URL for database db.
func (s *Server) URL(db int) string { return "redis://" + s.Addr + "/" + strconv.Itoa(db) }

// Start starts a redis-server (Debian package redis-server) on a free
// loopback port and stops it when the test ends. Its data survives a
// Restart: the append-only file is written at shutdown. extra are more
// redis-server arguments ("--maxmemory", "1mb", ...). Under go test -short,
// the quick mode that runs no external program, it skips the test.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	skipShort(tb)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redis-server not found (%v): install the Debian package redis-server (apt-get install -y redis-server); testdata/test.sh installs it", err)
	}
	s := &Server{dir: tb.TempDir(), bin: bin, args: extra}
	var last error
	for range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("sessionpooltest: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if last = s.start(); last == nil {
			tb.Cleanup(s.Stop)
			return s
		}
	}
	tb.Fatalf("sessionpooltest: start redis-server: %v", last)
	return nil
}

// skipShort skips a test that needs redis-server under go test -short, the
// quick mode that runs no external program. Without -short a missing
// redis-server fails the test (see Start).
func skipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("needs redis-server (Debian package redis-server): skipped under -short")
	}
}

// freePort returns a loopback port that was free a moment ago: redis-server
// cannot be given port 0, so the kernel's choice is taken from a listener
// closed at once (Start retries when another process takes it meanwhile).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the process and waits until it accepts connections, reading
// its log: no polling, no sleeps.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := append([]string{
		"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "no",
		"--protected-mode", "yes", "--loglevel", "notice",
	}, s.args...)
	cmd := exec.Command(s.bin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan struct{})
	var logTail strings.Builder
	exit := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if !signalled {
				logTail.WriteString(line + "\n")
				if strings.Contains(line, "Ready to accept connections") {
					signalled = true
					close(ready)
				}
			}
		}
		io.Copy(io.Discard, out)
		exit <- cmd.Wait()
	}()
	select {
	case <-ready:
		s.cmd, s.exit = cmd, exit
		return nil
	case err := <-exit:
		return fmt.Errorf("redis-server exited (%v) before it was ready:\n%s", err, logTail.String())
	}
}

// Stop shuts the server down (SIGTERM: it writes its data and exits) and
// waits for it. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(sigterm)
	<-s.exit
	s.cmd = nil
}

// Restart stops the server and starts it again on the same port with the
// same data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	s.Start(tb)
}

// Start starts a stopped server again on its port, with its data.
func (s *Server) Start(tb testing.TB) {
	tb.Helper()
	if err := s.start(); err != nil {
		tb.Fatalf("sessionpooltest: restart redis-server on %s: %v", s.Addr, err)
	}
}

// Pid returns the server's process ID, 0 when it is stopped.
func (s *Server) Pid() int {
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}
