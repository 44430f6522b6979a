package record

// Outcome is how a finished request ended: the action of the verdict that
// closed it (a rules action converts with Outcome(action)), or what happened
// instead when no verdict came. It is the outcome label of
// sessionproxy_requests_total, a key of Stats.ByOutcome and of the history's
// counts.
type Outcome string

// The outcomes. Adding one takes a constant here and its place in outcomes
// below, which gives it its history count, its place in the dashboard's chart
// and its mention in the HELP of sessionproxy_requests_total; the dashboard
// colours it with a class o-<outcome> of its style sheet.
const (
	OutcomeGood   Outcome = "good"   // the verdict marked the session good
	OutcomeBad    Outcome = "bad"    // the verdict marked the session bad
	OutcomeRetire Outcome = "retire" // the verdict retired the session
	OutcomeNone   Outcome = "none"   // the verdict left the session alone

	OutcomeError    Outcome = "error"    // no response came: the upstream or origin failed
	OutcomeRejected Outcome = "rejected" // the proxy answered itself (bad session name, store down, shutting down)
	OutcomeCanceled Outcome = "canceled" // the client went away before a response came
	OutcomeTunnel   Outcome = "tunnel"   // a CONNECT tunnel without interception was opened
)

// outcomes lists every Outcome in the order the dashboard stacks them: the
// four verdict actions, then the outcomes of requests that got no verdict.
var outcomes = [...]Outcome{
	OutcomeGood, OutcomeBad, OutcomeRetire, OutcomeNone,
	OutcomeError, OutcomeRejected, OutcomeCanceled, OutcomeTunnel,
}

// outcomeIndex is the index of o in outcomes, or -1 when o is not one of
// them.
func outcomeIndex(o Outcome) int {
	for i, known := range outcomes {
		if known == o {
			return i
		}
	}
	return -1
}

// attemptOutcomes are the outcomes an attempt can have: the four verdict
// actions and error. sessionproxy_attempts_total starts each at 0.
var attemptOutcomes = [...]Outcome{OutcomeGood, OutcomeBad, OutcomeRetire, OutcomeNone, OutcomeError}
