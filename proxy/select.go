package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// newSessionName is the session name that asks for a fresh session.
const newSessionName = "new"

// errBadSessionName answers a session header that cannot be a session ID.
var errBadSessionName = errors.New("proxy: invalid session name")

// selection is the session one attempt of a request goes out as.
type selection struct {
	sess   *sessionpool.Session
	pinned bool   // named by the client (header or username): never moved to another session
	free   func() // pool.exclusive: frees the session for the next request; nil otherwise
}

// done frees the session for the next request (pool.exclusive); it must be
// called once the attempt is over (its response body closed).
func (sel selection) done() {
	if sel.free != nil {
		sel.free()
	}
}

// sessionName takes the client's session choice off the request: the session
// header (which is removed so it never leaves the proxy), else the name in
// the proxy username of the tunnel or request.
func (s *Server) sessionName(req *http.Request, t *tunnel, cfg *config.Config) (string, error) {
	name := req.Header.Get(cfg.SessionHeader)
	req.Header.Del(cfg.SessionHeader)
	if name == "" {
		return t.client.sessionName, nil
	}
	if name != newSessionName && !validSessionName(name) {
		return "", fmt.Errorf("%w: %q", errBadSessionName, rules.ClipText(name, 64))
	}
	return name, nil
}

// pick chooses the session of one attempt from site's pool (poolSite), in
// the contract's order: a named session, then affinity (tunnel, client),
// then the pool. tried lists the sessions earlier attempts of the same
// request used; a retry never reuses one of them.
func (s *Server) pick(ctx context.Context, cfg *config.Config, name, site string, req *http.Request, t *tunnel, tried []string) (selection, error) {
	sel, err := s.pickOnce(ctx, cfg, name, site, req, t, tried)
	if errors.Is(err, sessionpool.ErrPoolClosed) {
		// The site's pool was dropped as idle (Sites.DropIdle) after this
		// request got it: its next Pool is a fresh one. After Shutdown
		// this fails again.
		sel, err = s.pickOnce(ctx, cfg, name, site, req, t, tried)
	}
	return sel, err
}

// pickOnce is pick on the pool Sites gives for site now.
func (s *Server) pickOnce(ctx context.Context, cfg *config.Config, name, site string, req *http.Request, t *tunnel, tried []string) (selection, error) {
	pool, err := s.sites.Pool(ctx, site)
	if err != nil {
		return selection{}, err
	}
	switch name {
	case "":
	case newSessionName:
		sess, err := pool.AddSession(ctx, sessionpool.SessionOptions{})
		if err != nil {
			return selection{}, err
		}
		sel := selection{sess: sess}
		if s.exclusive {
			sel.free, _ = s.hold(ctx, sess) // new: held by nobody else
		}
		return sel, nil
	default:
		for {
			sess, err := s.namedSession(ctx, pool, name)
			if err != nil || !s.exclusive {
				return selection{sess: sess, pinned: true}, err
			}
			free, err := s.waitFor(ctx, cfg, sess)
			if err != nil {
				return selection{}, err
			}
			if sess.IsUsable() {
				return selection{sess: sess, pinned: true, free: free}, nil
			}
			free() // spent by the request it waited for: the name goes to a fresh session
		}
	}

	switch cfg.Affinity {
	case config.AffinityTunnel:
		if t.host == "" { // plain HTTP: no tunnel to be faithful to
			break
		}
		return s.affine(ctx, cfg, pool, &t.sess, tried)
	case config.AffinityClient:
		return s.affine(ctx, cfg, pool, s.clientChoice(clientAffinityKey(t, req, site), cfg.ClientIdle), tried)
	}
	return s.unpinned(ctx, cfg, pool, tried)
}

// affine returns the session c keeps when it is still usable, none of tried
// and, with pool.exclusive, not busy; else a session of pool that becomes
// the one c keeps. A request that needs a new session while another request
// of c picks one waits for that pick, once (should it fail, the requests
// that waited do not wait in line behind each other's picks); with
// pool.exclusive, or when it has waited already, it takes another session
// instead, without keeping it: with pool.exclusive the one being picked
// will be busy with its request.
func (s *Server) affine(ctx context.Context, cfg *config.Config, pool *sessionpool.Pool, c *choice, tried []string) (selection, error) {
	stale, waited := "", false
	for {
		id, wait, mine := c.next(stale)
		switch {
		case mine:
			return s.pickFor(ctx, cfg, pool, c, tried)
		case wait != nil && (s.exclusive || waited):
			return s.unpinned(ctx, cfg, pool, tried)
		case wait != nil:
			waited = true
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return selection{}, ctx.Err()
			}
		}
		if !slices.Contains(tried, id) {
			if sel, ok := s.remembered(ctx, pool, id); ok {
				return sel, nil
			}
		}
		stale = id
	}
}

// pickFor makes the pick that c.next gave the request: a session of pool,
// which becomes the one c keeps.
func (s *Server) pickFor(ctx context.Context, cfg *config.Config, pool *sessionpool.Pool, c *choice, tried []string) (sel selection, err error) {
	id := ""
	defer func() { c.picked(id) }() // whatever happens: the requests waiting for it go on
	sel, err = s.unpinned(ctx, cfg, pool, tried)
	if err == nil {
		id = sel.sess.ID()
	}
	return sel, err
}

// clientChoice returns the choice of the client key names (affinity
// client), made when it has none; its idle time counts from now.
func (s *Server) clientChoice(key string, idle time.Duration) *choice {
	for {
		if v, ok := s.clients.Get(key); ok {
			c := v.(*choice)
			s.clients.Set(key, c, idle) // idle time counts from the last use
			return c
		}
		c := &choice{}
		if s.clients.Add(key, c, idle) == nil {
			return c
		}
		// Another request of the client made it a moment ago: take that one.
	}
}

// remembered returns the session affinity keeps for a client or tunnel
// when it is still usable and, with pool.exclusive, not busy.
func (s *Server) remembered(ctx context.Context, pool *sessionpool.Pool, id string) (selection, bool) {
	sess, err := pool.GetSessionByID(ctx, id)
	if err != nil {
		return selection{}, false
	}
	if !s.exclusive {
		return selection{sess: sess}, true
	}
	free, ok := s.hold(ctx, sess)
	if !ok {
		return selection{}, false
	}
	return selection{sess: sess, free: free}, true
}

// unpinned returns a session of pool that none of the earlier attempts
// used: with pool.exclusive, one that is not busy (freeSession).
func (s *Server) unpinned(ctx context.Context, cfg *config.Config, pool *sessionpool.Pool, tried []string) (selection, error) {
	if !s.exclusive {
		sess, err := fromPool(ctx, pool, tried)
		return selection{sess: sess}, err
	}
	return s.freeSession(ctx, pool, tried, cfg.Pool.MaxPoolSize, cfg.Pacing.MaxWait)
}

// waitFor takes a pinned session for the request (pool.exclusive), behind
// the requests that asked for it earlier (in this instance; on a Redis pool,
// then from the others, looking again every sharedPoll), waiting up to
// pacing.max_wait. It returns the release.
func (s *Server) waitFor(ctx context.Context, cfg *config.Config, sess *sessionpool.Session) (func(), error) {
	wctx, cancel := context.WithTimeout(ctx, cfg.Pacing.MaxWait)
	defer cancel()
	tooLong := func() error {
		return fmt.Errorf("%w: waited pacing.max_wait %v for session %q", errBusy, cfg.Pacing.MaxWait, sess.ID())
	}
	key := refOf(sess)
	if err := s.busy.acquire(wctx, key); err != nil {
		if ctx.Err() == nil {
			return nil, tooLong()
		}
		return nil, err
	}
	local := func() { s.busy.release(key) }
	for {
		shared, ok, err := s.holdShared(wctx, sess)
		if err == nil && ok {
			return func() { shared(); local() }, nil
		}
		if err == nil {
			err = sleepCtx(wctx, sharedPoll)
		}
		if err != nil {
			local()
			if ctx.Err() == nil && wctx.Err() != nil {
				return nil, tooLong()
			}
			return nil, err
		}
	}
}

// remember makes the session that answered a request the one its tunnel or
// client keeps, so that a retry's fresh session carries on.
func (s *Server) remember(cfg *config.Config, req *http.Request, t *tunnel, sel selection) {
	if sel.pinned {
		return
	}
	switch cfg.Affinity {
	case config.AffinityTunnel:
		if t.host != "" {
			t.sess.keep(sel.sess.ID())
		}
	case config.AffinityClient:
		s.clientChoice(clientAffinityKey(t, req, sel.sess.Site()), cfg.ClientIdle).keep(sel.sess.ID())
	}
}

// clientAffinityKey identifies a client on a site for affinity "client":
// its address and its User-Agent, so that one browser's many connections
// are one identity while two programs on one host are two; and the site,
// whose pool holds the session.
func clientAffinityKey(t *tunnel, req *http.Request, site string) string {
	return t.client.addr + "\x00" + req.UserAgent() + "\x00" + site
}

// fromPool asks the pool for a session that none of the earlier attempts
// used. The pool may hand back a tried session that is still usable (after a
// "bad" mark, say), so it asks a few times and then creates a fresh one.
func fromPool(ctx context.Context, pool *sessionpool.Pool, tried []string) (*sessionpool.Session, error) {
	for range 4 {
		sess, err := pool.GetSession(ctx)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(tried, sess.ID()) {
			return sess, nil
		}
	}
	return pool.AddSession(ctx, sessionpool.SessionOptions{})
}

// namedSession returns the session the client named: pool's, else the one
// the admin API added without a site (which serves its name on every
// site), else a new one in pool under that name, with the upstream,
// fingerprint and user data of its namesake on another site (namesake).
func (s *Server) namedSession(ctx context.Context, pool *sessionpool.Pool, name string) (*sessionpool.Session, error) {
	for range 3 {
		sess, err := pool.GetSessionByID(ctx, name)
		if err == nil {
			return sess, nil
		}
		if !errors.Is(err, sessionpool.ErrSessionNotFound) {
			return nil, err
		}
		if pool.Site() != "" {
			if all := s.sites.Lookup(""); all != nil {
				if sess, err := all.GetSessionByID(ctx, name); err == nil {
					return sess, nil
				}
			}
		}
		opts := s.namesake(ctx, pool.Site(), name)
		sess, err = pool.AddSession(ctx, opts)
		if err == nil {
			s.names.SetDefault(name, namesakeOf(sess))
			return sess, nil
		}
		if !errors.Is(err, sessionpool.ErrSessionExists) {
			return nil, err
		}
		// Another request created it a moment ago: take that one.
	}
	return nil, fmt.Errorf("proxy: get session %q: %w", name, sessionpool.ErrSessionExists)
}

// exclusivePicks is how many picks of busy sessions an unpinned request
// makes before it creates a session or waits for one.
const exclusivePicks = 8

// freeSession returns a session of pool that is not busy, taken for the
// request (pool.exclusive): a pick of the pool that is free, else a new
// session while the pool holds fewer than max, else the first session
// freed, waiting up to maxWait.
func (s *Server) freeSession(ctx context.Context, pool *sessionpool.Pool, tried []string, max int, maxWait time.Duration) (selection, error) {
	deadline := time.NewTimer(maxWait)
	defer deadline.Stop()
	for {
		freed := s.busy.freedAt(pool.Site()) // before the picks: a release after them is seen
		for range exclusivePicks {
			sess, err := fromPool(ctx, pool, tried)
			if err != nil {
				return selection{}, err
			}
			if free, ok := s.hold(ctx, sess); ok {
				return selection{sess: sess, free: free}, nil
			}
		}
		if len(pool.Sessions()) < max {
			sess, err := pool.AddSession(ctx, sessionpool.SessionOptions{})
			if err != nil {
				return selection{}, err
			}
			if free, ok := s.hold(ctx, sess); ok {
				return selection{sess: sess, free: free}, nil
			}
		}
		var poll <-chan time.Time // sessions freed on other instances announce nothing
		if s.sites.Shared() {
			t := time.NewTimer(sharedPoll)
			defer t.Stop()
			poll = t.C
		}
		select {
		case <-freed:
		case <-poll:
		case <-ctx.Done():
			return selection{}, ctx.Err()
		case <-deadline.C:
			return selection{}, fmt.Errorf("%w: waited pacing.max_wait %v for one on %q", errBusy, maxWait, pool.Site())
		}
	}
}
