package rules

import (
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
	"github.com/sessionproxy/sessionproxy/sessionpool"
)

// Action is what a rule does to the session that made a request. Its zero
// value "" is no action: as a default action it means the built-in one, and
// in a Spec it is a problem (Action is required).
type Action string

// The actions of a rule. ActionGood, ActionBad and ActionRetire call the
// session's MarkGood, MarkBad and Retire (each counts one use); ActionNone
// leaves the session untouched.
const (
	ActionGood   Action = "good"
	ActionBad    Action = "bad"
	ActionRetire Action = "retire"
	ActionNone   Action = "none"
)

// Valid reports whether a is one of the four actions.
func (a Action) Valid() bool {
	switch a {
	case ActionGood, ActionBad, ActionRetire, ActionNone:
		return true
	}
	return false
}

// Mark returns the sessionpool.Mark that applies a to a session with
// Session.Commit: Good, Bad or Retire for the actions of those names, and
// NoMark (count nothing) for ActionNone and anything else.
func (a Action) Mark() sessionpool.Mark {
	switch a {
	case ActionGood:
		return sessionpool.Good
	case ActionBad:
		return sessionpool.Bad
	case ActionRetire:
		return sessionpool.Retire
	}
	return sessionpool.NoMark
}

// ErrKindAny is the error condition that matches every upstream failure,
// whatever its kind. The other values of a rule's error condition are the
// kinds of upstream.Error it matches: upstream.KindConnect, KindTLS and
// KindTimeout.
const ErrKindAny upstream.ErrorKind = "any"
