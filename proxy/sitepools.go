package proxy

import (
	"context"
	"strconv"

	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// poolSite is the site whose pool serves requests to site (sites.Of of
// their host): site itself, or "" with pool.scope global.
func (s *Server) poolSite(site string) string {
	if s.global {
		return ""
	}
	return site
}

// siteLabel is the site label of a request to host (of site) in the
// metrics: the host glob of the sites entry that matches it, else its site
// (record bounds those).
func (s *Server) siteLabel(host, site string) string {
	if r := s.pacer.Match(host); r.Host != "" {
		return r.Host
	}
	return site
}

// sessionRef names a session across sites (its transport, its turn):
// sessions of different sites may share an ID, and a name's next session
// (the last one expired or retired) shares its ID but is another session,
// so its creation time (unix ns) is part of the name too.
type sessionRef struct {
	site, id string
	created  int64
}

// refOf is sess's sessionRef.
func refOf(sess *sessionpool.Session) sessionRef {
	return sessionRef{sess.Site(), sess.ID(), sess.CreatedAt().UnixNano()}
}

// paceKey names sess to the pacer: its ID and when it was made, so that a
// session made afresh under a name does not inherit the pause or the turn
// of the spent one.
func paceKey(sess *sessionpool.Session) string {
	return sess.ID() + "@" + strconv.FormatInt(sess.CreatedAt().UnixNano(), 36)
}

// sessionHeld reports whether the session ref names is still usable in its
// site's pool (for Transports.Retain).
func (s *Server) sessionHeld(ref sessionRef) bool {
	p := s.sites.Lookup(ref.site)
	if p == nil {
		return false
	}
	sess, err := p.GetSessionByID(context.Background(), ref.id)
	return err == nil && sess.CreatedAt().UnixNano() == ref.created
}

// servingElsewhere returns the site of a usable session named id that
// serves the name where a session added to site would (the contract's "a
// usable session holds the id"): for a site-less session (which serves
// its name on every site, after each site's own), one on any site; for a
// site's session, the site-less one. Only pools open in this instance
// are asked.
func (s *Server) servingElsewhere(ctx context.Context, site, id string) (string, bool) {
	for _, p := range s.sites.Pools() {
		if p.Site() == site || (site != "" && p.Site() != "") {
			continue
		}
		if _, err := p.GetSessionByID(ctx, id); err == nil {
			return p.Site(), true
		}
	}
	return "", false
}

// namesake returns the options of a new session named id on site: the
// upstream, fingerprint and user data the name has on the other sites, so
// that the IP a site sees for a name does not change as the name moves
// between sites. It is what the name's last session was made with (kept
// for pool.session.max_age, forgotten when a session of the name retires),
// else that of a usable session of the name on another site; else just the
// name, and the new session gets the next upstream, as any new session.
func (s *Server) namesake(ctx context.Context, site, id string) sessionpool.SessionOptions {
	if v, ok := s.names.Get(id); ok {
		return v.(sessionpool.SessionOptions)
	}
	for _, p := range s.sites.Pools() {
		if p.Site() == site || p.Site() == "" {
			continue
		}
		if sess, err := p.GetSessionByID(ctx, id); err == nil {
			opts := namesakeOf(sess)
			s.names.SetDefault(id, opts)
			return opts
		}
	}
	return sessionpool.SessionOptions{ID: id}
}

// namesakeOf is what a session of sess's name on another site takes of it.
func namesakeOf(sess *sessionpool.Session) sessionpool.SessionOptions {
	return sessionpool.SessionOptions{ID: sess.ID(), ProxyURL: sess.ProxyURL(), Fingerprint: sess.Fingerprint(), UserData: sess.UserData()}
}

// knownPools returns every site's pool (sessionpool.Sites.All: with Redis,
// the sites other instances opened too); when the store cannot list them,
// the ones open here, and the error is logged.
func (s *Server) knownPools(ctx context.Context) []*sessionpool.Pool {
	pools, err := s.sites.All(ctx)
	if err != nil {
		s.storeFailed(err)
	}
	return pools
}

// heldSessions returns the sessions the pools hold under id, usable or
// not: on site only when onSite, else on every site.
func (s *Server) heldSessions(id, site string, onSite bool) []*sessionpool.Session {
	var out []*sessionpool.Session
	for _, p := range s.knownPools(context.Background()) {
		if onSite && p.Site() != site {
			continue
		}
		if sess := heldIn(p, id); sess != nil {
			out = append(out, sess)
		}
	}
	return out
}

// heldIn returns the session p holds under id, usable or not; nil when
// there is none.
func heldIn(p *sessionpool.Pool, id string) *sessionpool.Session {
	if sess, err := p.GetSessionByID(context.Background(), id); err == nil {
		return sess
	}
	for _, sess := range p.Sessions() {
		if sess.ID() == id {
			return sess
		}
	}
	return nil
}
