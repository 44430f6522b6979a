package cookiefile

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxProblems bounds how many problems an *Error lists.
const MaxProblems = 10

// Problem is one problem of a document: the line it is on (1-based) and
// what is wrong.
type Problem struct {
	Line int
	Text string
}

// String is "line N: text".
func (p Problem) String() string { return "line " + strconv.Itoa(p.Line) + ": " + p.Text }

// Error is the error about a document that cannot be read: the kind of
// error and the problems found, each with its line. Its message is the
// kind's, a colon and Detail.
type Error struct {
	// Err is the kind of error, which Unwrap returns: ErrBadCookies, or
	// the error a JSONReader was made with.
	Err error
	// Problems are the first MaxProblems problems, in the order found.
	Problems []Problem
	// More counts the problems found beyond Problems.
	More int
}

// Error returns the kind's message, a colon and Detail.
func (e *Error) Error() string { return e.Err.Error() + ": " + e.Detail() }

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// Detail lists the problems, "line 2: ...; line 5: ...", ending with "; and
// N more" when there were more than MaxProblems.
func (e *Error) Detail() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.String())
	}
	if e.More > 0 {
		fmt.Fprintf(&b, "; and %d more", e.More)
	}
	return b.String()
}

// lineError is the *Error of kind err with the one problem at line.
func lineError(err error, line int, format string, args ...any) *Error {
	return &Error{Err: err, Problems: []Problem{{Line: line, Text: fmt.Sprintf(format, args...)}}}
}

// problems collects the problems of one document, each with its line. The
// zero value is empty.
type problems struct {
	list  []Problem
	count int
}

func (p *problems) add(line int, format string, args ...any) {
	p.count++
	if len(p.list) < MaxProblems {
		p.list = append(p.list, Problem{Line: line, Text: fmt.Sprintf(format, args...)})
	}
}

// err is the *Error listing the problems, nil when there are none.
func (p *problems) err() error {
	if p.count == 0 {
		return nil
	}
	return &Error{Err: ErrBadCookies, Problems: p.list, More: p.count - len(p.list)}
}
