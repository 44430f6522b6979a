package proxy

import "sync"

// choice is the session an affinity keeps for one tunnel or one client. It
// is chosen once: the first request that needs one picks it, and the
// requests that need one while it picks wait for its pick rather than make
// their own, so that a browser's parallel first requests are one identity.
// The zero value keeps no session; safe for concurrent use.
type choice struct {
	mu      sync.Mutex
	id      string        // the session kept; "" before the first pick
	picking chan struct{} // closed when the pick under way ends; nil when none is
}

// next tells a request what to do: use id, the session kept, when it is not
// stale (the one the request found it cannot use); else wait for the pick
// under way; else pick (mine), then call picked.
func (c *choice) next(stale string) (id string, wait <-chan struct{}, mine bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.id != "" && c.id != stale:
		return c.id, nil, false
	case c.picking != nil:
		return "", c.picking, false
	}
	c.picking = make(chan struct{})
	return "", nil, true
}

// picked ends the pick next gave a request: id, unless "" (the pick
// failed), becomes the session kept.
func (c *choice) picked(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id != "" {
		c.id = id
	}
	close(c.picking)
	c.picking = nil
}

// keep makes id the session kept.
func (c *choice) keep(id string) {
	c.mu.Lock()
	c.id = id
	c.mu.Unlock()
}
