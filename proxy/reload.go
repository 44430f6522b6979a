package proxy

import (
	"errors"

	"github.com/sessionproxy/sessionproxy/proxy/config"
)

// ErrNoConfigFile is returned by Reload when the running config was not
// loaded from a file.
var ErrNoConfigFile = errors.New("proxy: no config file to reload")

// Reload re-reads the config file the server was started with and applies
// it at once, without dropping connections or sessions: rules, upstreams for
// new sessions, cookie mode, auth, affinity, session header, interception
// choices (mitm.enabled, mitm.skip_hosts), default action, retries, body
// limit and admin token all take effect for the next request. Keys that are bound at start (listen addresses, data_dir, the
// pool's settings and store, the CA and upstream TLS settings, logging) keep
// their running values; their names are returned so the caller can say a
// restart is needed.
//
// An invalid file changes nothing: the error is a *config.Error listing every
// problem. Reload is safe for concurrent use.
func (s *Server) Reload() (needRestart []string, err error) {
	var next *config.Config
	for {
		old := s.cfg.Load()
		if old.Path == "" {
			return nil, ErrNoConfigFile
		}
		if next, err = config.Load(old.Path); err != nil {
			return nil, err
		}
		needRestart = config.RestartKeys(old, next)
		// Keep what cannot change while running, so that what the server
		// reports is what it does.
		config.KeepRestartKeys(old, next)
		// Another reload stored its config meanwhile (a SIGHUP and POST
		// /reload at once): it may have read a later file than this one
		// did, so this one reads the file again, no lock held across it.
		if s.cfg.CompareAndSwap(old, next) {
			break
		}
	}
	s.log.Info("config reloaded", "file", next.Path, "rules", len(next.Rules.Rules()),
		"upstreams", len(next.Upstreams), "restart_needed_for", needRestart)
	return needRestart, nil
}
