package config

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ErrInvalid is matched (with errors.Is) by every *Error.
var ErrInvalid = errors.New("config: invalid configuration")

// Problem is one thing wrong in a configuration.
type Problem struct {
	File string // as given to Parse
	Line int    // 1-based; 0 when unknown
	Path string // key path like pool.strategy or rules[2].status; "" for the whole file
	Msg  string // what is wrong
	Got  string // the offending value as written (quoted when a string); "" when not shown
}

// String formats the problem as FILE:LINE: path: msg (got X).
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
		}
		b.WriteString(": ")
	} else if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Got != "" {
		fmt.Fprintf(&b, " (got %s)", p.Got)
	}
	return b.String()
}

// Error holds every problem found in a configuration, in file order.
// errors.Is(err, ErrInvalid) holds for it.
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

// problems collects Problems.
type problems []Problem

func (ps *problems) add(line int, path, msg, got string) {
	*ps = append(*ps, Problem{Line: line, Path: path, Msg: msg, Got: got})
}

// err returns a *Error for the problems (sorted by line, file set),
// or nil when there are none.
func (ps problems) err(file string) error {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone([]Problem(ps))
	for i := range out {
		out[i].File = file
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Line < out[j].Line })
	return &Error{Problems: out}
}
