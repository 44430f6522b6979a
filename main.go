// Command sessionproxy is a forward HTTP/HTTPS proxy that sends every request
// as one of a pool of user-like sessions: with the session's cookies, through
// the session's sticky upstream proxy, and with rules that retire blocked
// sessions. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/sessionproxy/sessionproxy/proxy"
	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/gcfloor"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "rules" {
		os.Exit(runRules(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run is the whole program; it returns the exit status: 0 after a clean
// shutdown, 1 when the proxy could not run, 2 for a bad command line or
// config.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sessionproxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML config `file` (default: built-in defaults)")
	logFormat := fs.String("log-format", "", "log format, text or json (default: the config's log_format)")
	pprofAddr := fs.String("pprof", "", "serve Go's profiles (/debug/pprof/) on this loopback `address`, e.g. 127.0.0.1:6060 (default: off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sessionproxy: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	// SIGHUP re-reads the config file, as POST /reload does: caught from
	// here on, so that one sent while the proxy starts is not Go's default
	// (exit) but a reload once it runs.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	cfg := config.Default()
	if *configPath != "" {
		var err error
		if cfg, err = config.Load(*configPath); err != nil {
			fmt.Fprintln(stderr, err) // unreadable or invalid: a bad command line either way
			return 2
		}
	}
	format := cfg.LogFormat
	if *logFormat != "" {
		format = config.LogFormat(*logFormat)
	}
	logger, err := newLogger(stderr, format, cfg.LogLevel)
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy: %v\n", err)
		return 2
	}

	// go-redis reports connection trouble through a logger of its own (a
	// global); the proxy already answers and logs each failed request, so
	// these go to debug.
	redis.SetLogger(redisLogger{logger})

	if *pprofAddr != "" {
		stopPprof, err := servePprof(*pprofAddr, logger)
		if err != nil {
			fmt.Fprintf(stderr, "sessionproxy: -pprof: %v\n", err)
			return 2
		}
		defer stopPprof()
	}

	// The heap floor: fewer collections while little is live. GOGC in
	// the environment is the user's choice and is left alone.
	if os.Getenv("GOGC") == "" {
		floor := gcfloor.Start(gcfloor.Options{Bytes: cfg.GC.HeapFloor})
		defer floor.Close()
	}

	// SIGINT or SIGTERM shuts down gracefully (the drain, then the last
	// save); a second one stops the process at once, Go's default, which
	// signal.Stop restores before the shutdown begins.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	term := make(chan os.Signal, 1)
	signal.Notify(term, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(term)
	go func() {
		select {
		case <-term:
			signal.Stop(term)
			stop()
		case <-ctx.Done():
		}
	}()
	srv, err := proxy.Open(ctx, proxy.Options{Config: cfg, Logger: logger})
	if err != nil {
		logger.Error("cannot start", "err", err)
		if errors.Is(err, proxy.ErrConfigFiles) {
			return 2 // the config names files that cannot be used: a bad config
		}
		return 1
	}
	// The goroutine ends with ctx, which stop() cancels when run returns.
	go reloadOnHUP(ctx, hup, srv, logger)
	if err := srv.ListenAndServe(ctx); err != nil {
		logger.Error("stopped with an error", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// servePprof serves Go's profiles on addr, which must name a loopback IP:
// the profiles tell much about the process and have no authentication. It
// returns the function that stops serving them.
func servePprof(addr string, logger *slog.Logger) (stop func() error, err error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("want a loopback IP address such as 127.0.0.1:6060 (got %q)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go http.Serve(ln, pprofMux())
	logger.Info("profiles served", "pprof", ln.Addr().String())
	return ln.Close, nil
}

// pprofMux serves net/http/pprof's handlers under /debug/pprof/.
func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func newLogger(w io.Writer, format config.LogFormat, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case config.LogText, "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case config.LogJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format must be text or json (got %q)", format)
}

// redisLogger passes go-redis's messages to slog at debug level.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.DebugContext(ctx, "redis client: "+fmt.Sprintf(format, v...))
}

const rulesUsage = `usage: sessionproxy rules [-config FILE] [-host HOST] [-json] RESPONSE-FILE...

Explains, for each saved HTTP response (as "curl -si URL > FILE" writes it),
which rule of the config matches and what it would do, with one line per rule
saying which of its conditions hold. Nothing is sent anywhere.

`

// runRules is the "rules" subcommand (see rules.Report): it returns 0 when
// every file was explained, 1 when some file could not be read or parsed
// (the others are explained anyway; problems go to stderr as "FILE:
// problem"), 2 for a bad command line or a config that does not load.
func runRules(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("sessionproxy rules", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprint(stderr, rulesUsage)
		fset.PrintDefaults()
	}
	configPath := fset.String("config", "", "YAML config `file` whose rules, default_action and body_limit apply (default: built-in defaults)")
	hostFlag := fset.String("host", "", "request `host` that host conditions are evaluated against, or a URL to take it from (default \"\")")
	asJSON := fset.Bool("json", false, "print a JSON array, one object per file, instead of text")
	if err := fset.Parse(args); err != nil {
		return 2
	}
	if fset.NArg() == 0 {
		fmt.Fprintln(stderr, "sessionproxy rules: no response files given")
		fset.Usage()
		return 2
	}
	host, err := requestHost(*hostFlag)
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy rules: -host: %v\n", err)
		return 2
	}
	cfg := config.Default()
	if *configPath != "" {
		if cfg, err = config.Load(*configPath); err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
	}
	failed, err := rules.Report(stdout, stderr, fset.Args(),
		rules.ReportOptions{Rules: cfg.Rules, BodyLimit: cfg.BodyLimit, Host: host, JSON: *asJSON})
	if err != nil {
		fmt.Fprintf(stderr, "sessionproxy rules: %v\n", err)
		return 1
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// requestHost returns the host named by -host: a host (a port is ignored
// by the rules) or a URL whose host is taken.
func requestHost(s string) (string, error) {
	if !strings.Contains(s, "://") {
		if strings.ContainsAny(s, " /\t") {
			return "", fmt.Errorf("want a host like www.example.com or a URL (got %q)", s)
		}
		return s, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", errors.Unwrap(err)
	}
	if u.Hostname() == "" {
		return "", fmt.Errorf("URL without a host (got %q)", u.Redacted())
	}
	return u.Hostname(), nil
}

// reloadOnHUP reloads srv's config for every signal on hup until ctx ends.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, srv *proxy.Server, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			if restart, err := srv.Reload(); err != nil {
				logger.Warn("config reload refused; the running config stays", "err", err)
			} else if len(restart) > 0 {
				logger.Warn("some changed keys take effect only after a restart", "keys", restart)
			}
		}
	}
}
