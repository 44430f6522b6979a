// Package proxy is sessionproxy's forward HTTP/HTTPS proxy: a goproxy-based
// MITM proxy that sends every request as one of a sessionpool.Pool's
// sessions, with that session's cookies and through that session's upstream
// proxy, and lets rules decide the session's fate from the response.
//
// A Server is built with Open from a Config, serves proxy clients on one
// listener (Serve) and the admin API on another (ServeAdmin), and is stopped
// with Shutdown, which drains in-flight requests and persists the pool.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/patrickmn/go-cache"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/mitm"
	"github.com/sessionproxy/sessionproxy/proxy/record"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

var (
	// ErrServerClosed is returned by Serve and ServeAdmin after Shutdown.
	ErrServerClosed = errors.New("proxy: server closed")
	// ErrUnsupportedStore is returned by Open when Options.Store is set
	// while pool.store names a Redis server.
	ErrUnsupportedStore = errors.New("proxy: unsupported pool store")
	// ErrConfigFiles is returned by Open when a file the config names (or
	// the CA in data_dir) cannot be used: mitm.upstream_ca, mitm.ca_cert,
	// mitm.ca_key. Every such problem is in the error.
	ErrConfigFiles = errors.New("proxy: unusable file in the config")
)

// Options configures Open. Its zero value runs on config.Default() with logs
// discarded.
type Options struct {
	// Config is the configuration to run. Nil means config.Default().
	Config *config.Config
	// Logger receives the proxy's structured logs. Nil discards them.
	Logger *slog.Logger
	// Now is the clock of the pool, of the CA and of the dashboard's
	// outcome history. Nil means time.Now.
	Now func() time.Time
	// Store overrides where the pool persists its state. Nil means a
	// sessionpool.FileStore in Config.DataDir.
	Store sessionpool.Store
}

// Server is a running sessionproxy. Its methods are safe for concurrent use.
type Server struct {
	log        *slog.Logger
	now        func() time.Time
	sites      *sessionpool.Sites // the pools: one per site, or only the site "" with pool.scope global
	global     bool               // pool.scope global, bound at start: every request is the site ""
	exclusive  bool               // pool.exclusive, bound at start
	busy       busySessions       // the sessions serving a request now, with pool.exclusive
	ca         *mitm.CA
	transports *upstream.Transports[sessionRef]
	// beforeCookie lists, per browser, the headers it sends before
	// Cookie (withCookieSlot); read-only after Open.
	beforeCookie map[string][]string
	gp           *goproxy.ProxyHttpServer
	own          http.Handler // serves http://sessionproxy/ (ownhost.go)
	tlsOpts      upstream.Options
	clients      *cache.Cache // client affinity: client key -> *choice, the session kept for it
	names        *cache.Cache // session name -> namesake: what a named session takes to a new site
	rec          *record.Recorder
	pacer        *sites.Pacer // sites and pacing.max_wait, bound at start
	orderField   string       // the field an HTTP/2 client's response head names its order in (h2Orderer)
	// paceHook, when set (by a test, before any request), is called when
	// a request may wait for its turn at a site, before it does, with the
	// context the wait ends with.
	paceHook func(context.Context)

	cfg atomic.Pointer[config.Config] // replaced whole on reload

	upstreamNext atomic.Uint64 // round-robin cursor over cfg.Upstreams

	inflight drain // requests whose response is not yet closed; closed by Shutdown

	lastSave atomic.Bool // Shutdown's save is under way: its failure is Shutdown's to return

	conns connTracker // every accepted proxy connection, hijacked ones too

	listening listenAddrs // the proxy's and the admin API's listeners, never a target (targets.go)

	mu       sync.Mutex // guards the fields below
	servers  []*http.Server
	shutdown bool

	stop      chan struct{} // closed by Shutdown: stops the maintenance loop
	loopDone  chan struct{}
	closeOnce sync.Once
	unsubRet  func()
}

// Open builds a Server from opts: it loads or creates the CA, opens the pool
// (restoring its persisted state) and prepares the upstream transports. It
// does not listen; call Serve and ServeAdmin.
func Open(ctx context.Context, opts Options) (*Server, error) {
	cfg := opts.Config
	if cfg == nil {
		cfg = config.Default()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	s := &Server{
		log:        logger,
		now:        now,
		clients:    cache.New(cfg.ClientIdle, 0), // janitor off: the maintenance loop sweeps it
		names:      cache.New(cfg.Pool.Session.MaxAge, 0),
		stop:       make(chan struct{}),
		loopDone:   make(chan struct{}),
		orderField: newOrderMarker(),
	}
	s.cfg.Store(cfg)
	s.rec = s.newRecorder(now)
	pacer, err := newPacer(cfg)
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	s.pacer = pacer

	roots, rootsErr := upstream.LoadRootCAs(cfg.MITM.UpstreamCA)
	certPath, keyPath := caPaths(cfg)
	var ca *mitm.CA
	created := false
	switch {
	case cfg.MITM.CACert != "": // the operator's own CA: a typo must not give a new one
		ca, err = mitm.Load(certPath, keyPath, now)
	case rootsErr == nil: // else no CA is generated for a proxy that will not start
		ca, created, err = mitm.LoadOrCreate(certPath, keyPath, now)
	}
	if rootsErr != nil || err != nil {
		var errs []error
		if rootsErr != nil {
			errs = append(errs, fmt.Errorf("load upstream CAs: %w", rootsErr))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("load CA: %w", err))
		} else if ca != nil {
			ca.Close()
		}
		return nil, fmt.Errorf("%w: %w", ErrConfigFiles, errors.Join(errs...))
	}
	s.ca = ca
	if created {
		logger.Info("generated a new CA", "cert", certPath, "key", keyPath)
	}
	s.tlsOpts = upstream.Options{RootCAs: roots, InsecureSkipVerify: cfg.MITM.InsecureSkipVerify, CheckTarget: s.checkTarget,
		MaxResponseHeaderBytes: int64(cfg.MaxHeaderBytes)}
	s.transports = upstream.NewTransports[sessionRef](s.tlsOpts)
	s.beforeCookie = beforeCookie()

	store := opts.Store
	redisURL := ""
	if cfg.Pool.Store != config.StoreFile {
		if store != nil {
			ca.Close()
			return nil, fmt.Errorf("proxy: open store: %w: Options.Store is set and pool.store is %q", ErrUnsupportedStore, upstream.Redact(string(cfg.Pool.Store)))
		}
		redisURL = string(cfg.Pool.Store)
	} else if store == nil {
		fs, err := sessionpool.NewFileStore(cfg.DataDir)
		if err != nil {
			ca.Close()
			return nil, fmt.Errorf("proxy: open store: %w", err)
		}
		store = fs
	}
	popts := poolOptions(cfg, store, now, s.createSession, s.persisted)
	if redisURL != "" {
		popts.Redis = &sessionpool.RedisOptions{URL: redisURL, OnError: s.storeFailed}
	}
	ss, err := sessionpool.OpenSites(ctx, popts)
	if err != nil {
		ca.Close()
		return nil, fmt.Errorf("proxy: %w", err) // sessionpool.OpenSites says "open sites"
	}
	s.sites, s.global, s.exclusive = ss, cfg.Pool.Scope == config.ScopeGlobal, cfg.Pool.Exclusive
	s.unsubRet = ss.OnSessionRetired(s.sessionRetired)

	s.gp = s.newGoproxy()
	go s.maintain()
	return s, nil
}

// poolOptions maps the config's pool section onto sessionpool.Options.
func poolOptions(cfg *config.Config, store sessionpool.Store, now func() time.Time,
	create func(context.Context, *sessionpool.Pool, sessionpool.SessionOptions) (*sessionpool.Session, error),
	onPersist func(time.Duration, error),
) sessionpool.Options {
	return sessionpool.Options{
		MaxPoolSize: cfg.Pool.MaxPoolSize,
		SessionOptions: sessionpool.SessionOptions{
			MaxAge:              cfg.Pool.Session.MaxAge,
			MaxUsageCount:       cfg.Pool.Session.MaxUsageCount,
			MaxErrorScore:       cfg.Pool.Session.MaxErrorScore,
			ErrorScoreDecrement: cfg.Pool.Session.ErrorScoreDecrement,
		},
		Store:             store,
		PersistStateKey:   cfg.Pool.PersistStateKey,
		PersistInterval:   cfg.Pool.PersistInterval,
		Strategy:          cfg.Pool.Strategy,
		CreateSessionFunc: create,
		Now:               now,
		OnPersist:         onPersist,
	}
}

// createSession is the pool's CreateSessionFunc: every new session that does
// not name its own upstream gets the next one of cfg.Upstreams in turn, with
// its {session} placeholder (upstream.Placeholder) rendered for the session.
func (s *Server) createSession(_ context.Context, p *sessionpool.Pool, opts sessionpool.SessionOptions) (*sessionpool.Session, error) {
	if opts.Fingerprint == "" || opts.Fingerprint == string(config.FingerprintRandom) {
		opts.Fingerprint = drawFingerprint(s.cfg.Load().Fingerprint, opts.Fingerprint)
	}
	if opts.ProxyURL == "" {
		if ups := s.cfg.Load().Upstreams; len(ups) > 0 {
			i := s.upstreamNext.Add(1) - 1
			u := ups[i%uint64(len(ups))]
			if upstream.HasPlaceholder(u) && opts.ID == "" {
				opts.ID = sessionpool.NewID()
			}
			opts.ProxyURL = upstream.ForSession(u, opts.ID).String()
		}
	}
	sess, err := p.NewSession(opts)
	if err == nil {
		s.rec.SessionCreated()
	}
	return sess, err
}

// persisted is the pool's OnPersist: every persist is measured, and the
// failures are logged here (those of the periodic ones have no caller;
// POST /persist answers with its failure too), but for Shutdown's last
// save, whose failure Shutdown returns.
func (s *Server) persisted(took time.Duration, err error) {
	s.rec.Persisted(took, err)
	if err != nil && !s.lastSave.Load() {
		s.log.Error("persisting the pool failed", "err", err, "took", took.String())
	}
}

// sessionRetired closes the retired session's connections and logs it.
func (s *Server) sessionRetired(st sessionpool.SessionState) {
	s.transports.Close(sessionRef{st.Site, st.ID, st.CreatedAt.UnixNano()})
	s.names.Delete(st.ID) // the name's next session looks again (namesake)
	s.rec.SessionRetired(st)
}

// storeName is where the pool lives, for logs: the state file's directory
// or the Redis URL without its password.
func storeName(cfg *config.Config) string {
	if cfg.Pool.Store == config.StoreFile {
		return "file in " + cfg.DataDir
	}
	return upstream.Redact(string(cfg.Pool.Store))
}

// storeFailed logs an error of the shared store that no request can be
// told of (a mark or a cookie update that did not reach it).
func (s *Server) storeFailed(err error) {
	s.log.Warn("session store", "error", err)
}

// Sites returns the server's session pools: one per site (pool.scope
// site), or only the site "" (pool.scope global).
func (s *Server) Sites() *sessionpool.Sites { return s.sites }

// CA returns the server's interception CA.
func (s *Server) CA() *mitm.CA { return s.ca }

// Config returns the configuration in force.
func (s *Server) Config() *config.Config { return s.cfg.Load() }

// Handler returns the proxy's http.Handler, for tests and embedding. Serve
// uses it.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveProxy) }

// Serve accepts proxy clients on ln until Shutdown. It always returns a
// non-nil error; after Shutdown, ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	cfg := s.cfg.Load()
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnContext:       withConn,
	}
	s.listening.add(ln, false)
	// Tracked outermost: closing a tunnel at shutdown goes through its
	// coalescingConn, which writes what it holds first.
	return s.serve(srv, s.conns.wrap(newCoalescingListener(eofListener{ln}, cfg.MaxHeaderBytes)))
}

// ServeAdmin serves the admin API on ln until Shutdown.
func (s *Server) ServeAdmin(ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.AdminHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.listening.add(ln, true)
	return s.serve(srv, ln)
}

func (s *Server) serve(srv *http.Server, ln net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Shutdown stops accepting, lets in-flight requests finish until ctx is done,
// closes the remaining connections (tunnels included), persists the pool and
// releases everything. It is safe to call more than once; only the first call
// does the work. The error reports a drain cut short by ctx or a failed
// final persist.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() { err = s.shutdownOnce(ctx) })
	return err
}

func (s *Server) shutdownOnce(ctx context.Context) error {
	drained := s.inflight.close() // from now on new requests get 503
	s.mu.Lock()
	s.shutdown = true
	servers := s.servers
	s.mu.Unlock()

	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("proxy: drain connections: %w", err))
		}
	}
	select {
	case <-drained:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("proxy: drain requests: %w", ctx.Err()))
	}
	s.conns.closeAll() // tunnels are hijacked: http.Server.Shutdown does not see them
	for _, srv := range servers {
		srv.Close()
	}

	close(s.stop)
	<-s.loopDone
	s.unsubRet()
	// Persist with a fresh bound: ctx may be spent by a slow drain, and the
	// pool's state is the one thing that must not be lost.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	s.lastSave.Store(true)
	if err := s.sites.Teardown(pctx); err != nil {
		errs = append(errs, fmt.Errorf("proxy: persist pool: %w", err))
	}
	s.transports.CloseAll()
	s.ca.Close()
	return errors.Join(errs...)
}

// maintain sweeps, every minute, expired client-affinity entries, the
// pools of sites idle without a usable session (sessionpool.Sites.DropIdle)
// and the connections of sessions that left their pool without a
// retirement (expired, evicted, or their site dropped). It is owned by the
// Server and stops when Shutdown closes s.stop.
func (s *Server) maintain() {
	defer close(s.loopDone)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.clients.DeleteExpired()
			s.names.DeleteExpired()
			if n, err := s.sites.DropIdle(context.Background()); err != nil {
				s.log.Warn("dropping idle sites", "dropped", n, "err", err)
			}
			s.transports.Retain(s.sessionHeld)
		}
	}
}

// tlsConfigForHost adapts the CA to goproxy's ConnectAction.TLSConfig.
func (s *Server) tlsConfigForHost(host string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
	return s.ca.TLSConfigForHost(host)
}

// DrainTimeout bounds how long ListenAndServe lets in-flight requests finish
// once its context is done.
const DrainTimeout = 30 * time.Second

// ListenAndServe listens on the configured proxy and admin addresses, logs
// where they are and how to trust the CA, and serves until ctx is done; then
// it shuts down, draining in-flight requests for at most DrainTimeout and
// persisting the pool. It returns nil after a clean shutdown.
func (s *Server) ListenAndServe(ctx context.Context) error {
	cfg := s.cfg.Load()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		s.Shutdown(context.Background())
		return fmt.Errorf("proxy: listen: %w", err)
	}
	var adminLn net.Listener
	if cfg.AdminListen != "" {
		if adminLn, err = net.Listen("tcp", cfg.AdminListen); err != nil {
			ln.Close()
			s.Shutdown(context.Background())
			return fmt.Errorf("proxy: listen admin: %w", err)
		}
	}
	certPath, _ := caPaths(cfg)
	s.log.Info("sessionproxy listening", "proxy", ln.Addr().String(), "ca_cert", certPath,
		"ca_spki_sha256", s.ca.SPKIHash(), "pool_store", storeName(cfg), "sessions", s.sites.UsableSessionsCount())
	// Known before the first request: no target slips through meanwhile.
	s.listening.add(ln, false)
	if adminLn != nil {
		s.listening.add(adminLn, true)
	}
	errc := make(chan error, 2)
	go func() { errc <- s.Serve(ln) }()
	if adminLn != nil {
		s.log.Info("admin API listening", "admin", "http://"+adminLn.Addr().String())
		go func() { errc <- s.ServeAdmin(adminLn) }()
	}
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.log.Info("shutting down", "drain_timeout", DrainTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), DrainTimeout)
	defer cancel()
	err = s.Shutdown(sctx)
	if serveErr != nil && !errors.Is(serveErr, ErrServerClosed) {
		return errors.Join(serveErr, err)
	}
	return err
}

// caPaths returns where the CA certificate and key live for cfg.
func caPaths(cfg *config.Config) (cert, key string) {
	cert, key = cfg.MITM.CACert, cfg.MITM.CAKey
	if cert == "" {
		cert = filepath.Join(cfg.DataDir, "ca.pem")
	}
	if key == "" {
		key = filepath.Join(cfg.DataDir, "ca-key.pem")
	}
	return cert, key
}

// newPacer builds the pacer of the sites list and pacing.max_wait, both
// bound at start. Its clock is the real one: it waits with timers.
func newPacer(cfg *config.Config) (*sites.Pacer, error) {
	rs := make([]sites.Rule, len(cfg.Sites))
	for i, st := range cfg.Sites {
		rs[i] = sites.Rule{Host: st.Host, Delay: st.Delay, Concurrency: st.Concurrency}
	}
	return sites.New(sites.Options{Rules: rs, MaxWait: cfg.Pacing.MaxWait})
}

// Stats is a snapshot of the proxy's counters, as GET /stats serves it.
type Stats = record.Stats

// Stats returns the proxy's counters and the pool's counts.
func (s *Server) Stats() Stats { return s.rec.Stats() }

// newRecorder returns the recorder of s's counters, metrics and outcome
// history, on the clock now. It reads the session counts of s.sites when they
// are asked for (by GET /stats and the /metrics scrape), so s.sites must be
// set before s serves anything.
func (s *Server) newRecorder(now func() time.Time) *record.Recorder {
	return record.New(record.Options{
		Now:             now,
		UsableSessions:  func() int { return s.sites.UsableSessionsCount() },
		RetiredSessions: func() int { return s.sites.RetiredSessionsCount() },
		RequestLogSize:  requestLogSize(s.cfg.Load().RequestLog.Size),
		Sites:           siteGlobs(s.cfg.Load()),
	})
}

// siteGlobs are the host globs of cfg's sites entries: their labels are
// kept in the metrics whatever else comes.
func siteGlobs(cfg *config.Config) []string {
	globs := make([]string, len(cfg.Sites))
	for i, st := range cfg.Sites {
		globs[i] = st.Host
	}
	return globs
}

// requestLogSize is the recorder's RequestLogSize for the config's
// request_log.size, where 0 keeps none.
func requestLogSize(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
