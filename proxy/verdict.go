package proxy

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/sessionproxy/sessionproxy/proxy/config"
	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/sites"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// apply carries out a verdict on the session, storing the Set-Cookie lines
// of resp (nil: none) with it in one step, and logs a retirement. With a
// shared store (Redis) that step is the request's second and last round
// trip to it.
func (s *Server) apply(sess *sessionpool.Session, v rules.Verdict, host string, status int, resp *http.Response) {
	wasUsable := sess.IsUsable()
	if err := sess.Commit(context.Background(), resp, v.Action.Mark()); err != nil {
		s.storeFailed(err)
	}
	rule := verdictRule(v)
	if v.Rule != nil && (v.Action == rules.ActionRetire || v.Action == rules.ActionBad) {
		s.rec.Blocked(rule)
	}
	if wasUsable && !sess.IsUsable() {
		// Wearing out is routine (one line per max_usage_count uses):
		// DEBUG; a retirement by a rule or a bad mark stays INFO.
		level := slog.LevelInfo
		if v.Action != rules.ActionRetire && v.Action != rules.ActionBad && sess.IsMaxUsageCountReached() {
			level = slog.LevelDebug
		}
		s.log.Log(context.Background(), level, "session retired", "session", sess.ID(), "rule", rule, "action", string(v.Action),
			"status", status, "host", host, "site", sites.Of(host), "fingerprint", sess.Fingerprint(),
			"error_score", sess.ErrorScore(), "uses", sess.UsageCount())
	}
}

// failureVerdict is the rules' verdict on an upstream failure of kind on
// the way to host (bad when no rule spoke).
func failureVerdict(cfg *config.Config, host string, kind upstream.ErrorKind) rules.Verdict {
	return cfg.Rules.Decide(&rules.Outcome{Host: host, ErrKind: kind})
}

// verdictRule is the name of the rule behind a verdict, "" when none matched.
func verdictRule(v rules.Verdict) string {
	if v.Rule == nil {
		return ""
	}
	return v.Rule.Name
}
