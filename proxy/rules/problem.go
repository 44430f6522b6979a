package rules

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is matched (with errors.Is) by every *Error.
var ErrInvalid = errors.New("rules: invalid rules")

// Problem is one thing wrong with the rules given to Compile.
type Problem struct {
	Rule  int    // index of the rule in the specs; -1 when the problem is the default action
	Field string // the rule's key ("status", "header.Server"...), "" for the rule itself; "default_action" when Rule is -1
	Msg   string // what is wrong
	Got   string // the offending value, quoted when a string; "" when not shown
}

// Path returns where the problem is, as a configuration path:
// "rules[2].status", "rules[2]" or "default_action".
func (p Problem) Path() string {
	if p.Rule < 0 {
		return p.Field
	}
	path := fmt.Sprintf("rules[%d]", p.Rule)
	if p.Field != "" {
		path += "." + p.Field
	}
	return path
}

// String formats the problem as path: msg (got X).
func (p Problem) String() string {
	s := p.Path() + ": " + p.Msg
	if p.Got != "" {
		s += " (got " + p.Got + ")"
	}
	return s
}

// Error holds every problem Compile found. errors.Is(err, ErrInvalid) holds
// for it.
type Error struct {
	Problems []Problem
}

// Error lists the problems, one a line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }
