package config

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// decoder walks a yaml.Node tree into a Config, collecting problems.
type decoder struct {
	ps       problems
	at       map[string]*yaml.Node // the value of each key that was taken, by path, for checks across keys
	specs    []rules.Spec          // the rules as decoded, compiled last
	ruleSrcs []ruleSource          // for each of specs, where it stands in the file
}

// yamlErrorRE reads the YAML library's syntax errors, which are text only:
// "yaml: line N: MESSAGE" or "yaml: MESSAGE".
var yamlErrorRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// syntax reports a YAML syntax error in data as a problem at its line.
// The library gives none for some (see lineOf); 0 when it cannot be found.
func (d *decoder) syntax(data []byte, err error) {
	msg, line := err.Error(), 0
	if m := yamlErrorRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	// The library counts its parser's lines from 0 and its scanner's from
	// 1, and leaves out a line 0 (so: the first line, for either).
	switch {
	case yamlParserProblems[msg]:
		line++
	case line == 0 && (yamlScannerProblems[msg] || strings.HasPrefix(msg, "exceeded max depth")):
		line = 1
	}
	// At the end of the stream the library is a line past the last.
	last := lineCount(data)
	if len(data) > 0 && data[len(data)-1] != '\n' && data[len(data)-1] != '\r' {
		last++
	}
	line = min(line, max(last, 1))
	got := ""
	if line == 0 {
		line, got = lineOf(data, msg)
	}
	d.ps.add(line, "", "invalid YAML: "+msg, got)
}

// yamlParserProblems are the messages of the YAML library's parser
// (gopkg.in/yaml.v3's parserc.go), whose lines it counts from 0.
var yamlParserProblems = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected <document start>": true,
	"did not find expected <stream-start>":   true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"found duplicate %TAG directive":         true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found undefined tag handle":             true,
}

// yamlScannerProblems are the messages of the library's scanner
// (scannerc.go), whose lines it counts from 1 (but for the first).
var yamlScannerProblems = map[string]bool{
	"block sequence entries are not allowed in this context":       true,
	"could not find expected ':'":                                  true,
	"could not find expected directive name":                       true,
	"did not find URI escaped octet":                               true,
	"did not find expected '!'":                                    true,
	"did not find expected alphabetic or numeric character":        true,
	"did not find expected comment or line break":                  true,
	"did not find expected digit or '.' character":                 true,
	"did not find expected hexdecimal number":                      true,
	"did not find expected tag URI":                                true,
	"did not find expected version number":                         true,
	"did not find expected whitespace or line break":               true,
	"did not find expected whitespace":                             true,
	"did not find the expected '>'":                                true,
	"found a tab character that violates indentation":              true,
	"found a tab character where an indentation space is expected": true,
	"found an incorrect leading UTF-8 octet":                       true,
	"found an incorrect trailing UTF-8 octet":                      true,
	"found an indentation indicator equal to 0":                    true,
	"found character that cannot start any token":                  true,
	"found extremely long version number":                          true,
	"found invalid Unicode character escape code":                  true,
	"found unexpected document indicator":                          true,
	"found unexpected end of stream":                               true,
	"found unexpected non-alphabetical character":                  true,
	"found unknown directive name":                                 true,
	"found unknown escape character":                               true,
	"mapping keys are not allowed in this context":                 true,
	"mapping values are not allowed in this context":               true,
}

// unknownAnchorRE reads the YAML library's error for an alias of no anchor.
var unknownAnchorRE = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// lineOf finds in data the line of a YAML error that the library reports
// without one: bytes that are not UTF-8 (and what they are), or an alias
// of an anchor never defined (its first use as an alias, not in a comment
// or inside a scalar). 0 when it cannot tell.
func lineOf(data []byte, msg string) (line int, got string) {
	at := -1
	if strings.Contains(msg, "UTF-8") || msg == "control characters are not allowed" || msg == "invalid Unicode character" {
		for i := 0; i < len(data); {
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size <= 1 {
				at, got = i, fmt.Sprintf("byte 0x%02x", data[i])
				break
			}
			if !yamlPrintable(r) {
				at, got = i, fmt.Sprintf("%U", r)
				break
			}
			i += size
		}
	}
	if m := unknownAnchorRE.FindStringSubmatch(msg); m != nil {
		alias := []byte("*" + m[1])
		for i := 0; at < 0; {
			j := bytes.Index(data[i:], alias)
			if j < 0 {
				break
			}
			if isAlias(data, i+j, i+j+len(alias)) {
				at, got = i+j, string(alias)
			}
			i += j + len(alias)
		}
	}
	if at < 0 {
		return 0, ""
	}
	return lineCount(data[:at]) + 1, got
}

// yamlPrintable reports whether YAML allows r in a document (YAML 1.2,
// 5.1: c-printable, as the library's reader checks it).
func yamlPrintable(r rune) bool {
	switch {
	case r == '\t', r == '\n', r == '\r', r == 0x85:
		return true
	case r < 0x20 || r == 0x7f:
		return false
	case r < 0xa0:
		return r <= 0x7e
	}
	return r <= 0xd7ff || 0xe000 <= r && r <= 0xfffd || 0x10000 <= r && r <= 0x10ffff
}

// isAlias reports whether data[start:end], "*name", is an alias node: it
// ends where the name does, and it starts a node (its line holds nothing
// before it but indentation and YAML indicators) outside a comment.
func isAlias(data []byte, start, end int) bool {
	if end < len(data) && bytes.IndexByte([]byte(" \t\r\n,]}"), data[end]) < 0 {
		return false
	}
	lineStart := bytes.LastIndexAny(data[:start], "\r\n") + 1
	before := data[lineStart:start]
	if i := bytes.IndexByte(before, '#'); i == 0 || i > 0 && (before[i-1] == ' ' || before[i-1] == '\t') {
		return false // in a comment
	}
	before = bytes.TrimRight(before, " \t")
	return len(before) == 0 || bytes.IndexByte([]byte(":-[{,?"), before[len(before)-1]) >= 0
}

// lineCount counts the line breaks in b: LF, CRLF and a lone CR, as YAML
// reads them.
func lineCount(b []byte) int {
	return bytes.Count(b, []byte("\n")) + bytes.Count(b, []byte("\r")) - bytes.Count(b, []byte("\r\n"))
}

// decodeYAML decodes one document, turning a panic of the YAML library into
// a problem (bad input must never crash the program).
func decodeYAML(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(n)
}

func (d *decoder) parse(data []byte) *Config {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	err := decodeYAML(dec, &doc)
	if err == io.EOF {
		return c
	}
	if err != nil {
		d.syntax(data, err)
		return c
	}
	var extra yaml.Node
	if err := decodeYAML(dec, &extra); err != io.EOF {
		if err != nil {
			d.syntax(data, err)
		} else {
			d.ps.add(extra.Line, "", "only one YAML document is allowed", "")
		}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return c
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		return c
	}
	if limit := writtenSize(root) + maxValues; expandedSize(root, map[*yaml.Node]int{}, limit) > limit {
		d.ps.add(root.Line, "", fmt.Sprintf("the document's aliases expand it by more than %d values", maxValues), "")
		return c
	}
	d.top(root, c)
	return c
}

// maxValues bounds the values a document's aliases add to it when they
// are expanded: the walk (and its problems) would otherwise grow as the
// product of a few aliases of large anchors. A document as written, with
// however many rules, is walked once whatever its size.
const maxValues = 100_000

// writtenSize counts the nodes of n as written, an alias one node.
func writtenSize(n *yaml.Node) int {
	size := 1
	for _, c := range n.Content {
		size += writtenSize(c)
	}
	return size
}

// expandedSize counts the nodes of n with every alias expanded, stopping
// past limit. memo holds the size of each node counted (0 while it is
// being counted: an alias to a node that holds it counts one).
func expandedSize(n *yaml.Node, memo map[*yaml.Node]int, limit int) int {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if size, ok := memo[n]; ok {
		return max(size, 1)
	}
	memo[n] = 0
	size := 1
	for _, c := range n.Content {
		if size += expandedSize(c, memo, limit); size > limit {
			break
		}
	}
	memo[n] = size
	return size
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// resolveHere follows aliases, but a value taken through an alias keeps the
// alias's place: a problem with it is where it is used, not where its
// anchor is (what lies inside it stays where it is written).
func resolveHere(n *yaml.Node) *yaml.Node {
	r := resolve(n)
	if r == n || r == nil {
		return r
	}
	here := *r
	here.Line, here.Column = n.Line, n.Column
	return &here
}

func isNull(n *yaml.Node) bool {
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// got describes a node's value for a problem, quoting strings.
func got(n *yaml.Node) string {
	n = resolve(n)
	switch {
	case n == nil || n.Kind == 0:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Kind == yaml.AliasNode:
		return "an alias"
	case n.Tag == "!!str" || n.Tag == "!!binary" || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		return quote(n.Value)
	}
	return rules.ClipText(n.Value, 80)
}

// gotSecret describes a node that may hold a secret: its kind, never its
// value.
func gotSecret(n *yaml.Node) string {
	if n = resolve(n); n != nil && n.Kind == yaml.ScalarNode {
		return "a value, not shown"
	}
	return got(n)
}

// quote quotes s for a problem, shortening long values.
func quote(s string) string { return strconv.Quote(rules.ClipText(s, 80)) }

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// field is one known key of a mapping and what to do with its value.
type field struct {
	key string
	fn  func(v *yaml.Node, path string)
}

// mapping walks a mapping node: unknown and duplicate keys are problems;
// null values are skipped (the key keeps its default).
func (d *decoder) mapping(n *yaml.Node, path string, fields []field) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		if path == "" {
			d.ps.add(n.Line, path, "the configuration must be a mapping of keys to values", got(n))
		} else {
			d.ps.add(n.Line, path, "must be a mapping", got(n))
		}
		return
	}
	d.pairs(n, path, "keys must be plain names", func(k, v *yaml.Node, kp string) {
		var f *field
		for j := range fields {
			if fields[j].key == k.Value {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			keys := make([]string, len(fields))
			for j := range fields {
				keys[j] = fields[j].key
			}
			d.ps.add(k.Line, kp, unknownKey(k.Value, keys), "")
			return
		}
		if isNull(v) {
			return
		}
		f.fn(v, kp)
	})
}

// pairs calls fn, in order, for each key of the mapping node n with its
// (resolved) value and its path, after reporting the keys that are not
// scalars (badKey says what they must be), merge keys, and keys repeating
// an earlier one.
func (d *decoder) pairs(n *yaml.Node, path, badKey string, fn func(k, v *yaml.Node, keyPath string)) {
	d.pairsAt(n, path, badKey, func(key string) string { return join(path, key) }, fn)
}

// pairsAt is pairs with keyPath making each key's path, for mappings whose
// keys may hold what a problem must not show.
func (d *decoder) pairsAt(n *yaml.Node, path, badKey string, keyPath func(key string) string, fn func(k, v *yaml.Node, keyPath string)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolveHere(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.ps.add(k.Line, path, badKey, got(k))
			continue
		}
		if k.Tag == "!!merge" {
			d.ps.add(k.Line, path, "merge keys (<<) are not supported", "")
			continue
		}
		kp := keyPath(k.Value)
		if first, dup := seen[k.Value]; dup {
			d.ps.add(k.Line, kp, fmt.Sprintf("duplicate key (first at line %d)", first), "")
			continue
		}
		seen[k.Value] = k.Line
		fn(k, v, kp)
	}
}

// unknownKey words the problem of an unknown key, suggesting the closest
// known one.
func unknownKey(key string, known []string) string {
	if s := closest(key, known); s != "" {
		return "unknown key (did you mean " + s + "?)"
	}
	return "unknown key (known: " + strings.Join(known, ", ") + ")"
}

func closest(key string, known []string) string {
	norm := func(s string) string {
		return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
	}
	nk := norm(key)
	best, bestD := "", 1<<30
	for _, k := range known {
		if norm(k) == nk {
			return k
		}
		if len(nk) >= 3 && strings.HasPrefix(norm(k), nk) {
			return k
		}
		if dist := levenshtein(nk, norm(k)); dist < bestD {
			best, bestD = k, dist
		}
	}
	limit := 2
	if len(nk) >= 9 {
		limit = 3
	}
	if bestD <= limit && bestD < len(nk) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// scalar reports whether n is a scalar, adding a problem naming want if not.
func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.ps.add(n.Line, path, "must be "+want, got(n))
		return false
	}
	return true
}

// str decodes a string; numbers are taken as written, booleans and nulls
// (a list's "~" or empty item: a key's null never reaches here) are
// refused. A secret's value is never shown.
func (d *decoder) str(n *yaml.Node, path string, secret bool) (string, bool) {
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!bool" || n.Tag == "!!null") {
		g := got(n)
		if secret {
			g = ""
		}
		d.ps.add(n.Line, path, "must be a string (quote it)", g)
		return "", false
	}
	if !d.scalar(n, path, "a string") {
		return "", false
	}
	return n.Value, true
}

func (d *decoder) enum(n *yaml.Node, path string, choices ...string) (string, bool) {
	s, ok := d.str(n, path, false)
	if !ok {
		return "", false
	}
	if !slices.Contains(choices, s) {
		d.ps.add(n.Line, path, "must be one of "+strings.Join(choices, ", "), got(n))
		return "", false
	}
	return s, true
}

// text decodes a string whose value may be shown in problems.
func (d *decoder) text(n *yaml.Node, path string) (string, bool) { return d.str(n, path, false) }

// oneOf decodes one of choices, each written as itself.
func oneOf[T ~string](d *decoder, n *yaml.Node, path string, choices ...T) (T, bool) {
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = string(c)
	}
	s, ok := d.enum(n, path, names...)
	return T(s), ok
}

// oneOfNamed decodes one of choices, each written as its String().
func oneOfNamed[T fmt.Stringer](d *decoder, n *yaml.Node, path string, choices ...T) (T, bool) {
	names := make([]string, len(choices))
	for i, c := range choices {
		names[i] = c.String()
	}
	var zero T
	s, ok := d.enum(n, path, names...)
	if !ok {
		return zero, false
	}
	return choices[slices.Index(names, s)], true
}

func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
		d.ps.add(n.Line, path, "must be true or false", got(n))
		return false, false
	}
	var b bool
	if err := n.Decode(&b); err != nil {
		d.ps.add(n.Line, path, "must be true or false", got(n))
		return false, false
	}
	return b, true
}

// integer decodes a whole number in [lo, hi].
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int64) (int64, bool) {
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		var f float64
		if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") && n.Decode(&f) == nil && f == math.Trunc(f) && (f > float64(hi) || f < float64(lo)) {
			d.bounds(n, path, f, float64(lo), float64(hi), true) // whole, but past int64
		} else {
			d.ps.add(n.Line, path, "must be a whole number", got(n))
		}
		return 0, false
	}
	return v, d.bounds(n, path, float64(v), float64(lo), float64(hi), true)
}

func (d *decoder) bounds(n *yaml.Node, path string, v, lo, hi float64, whole bool) bool {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	switch {
	case v < 0 && lo >= 0:
		d.ps.add(n.Line, path, "must not be negative", got(n))
	case v < lo && lo == 1 && whole:
		d.ps.add(n.Line, path, "must be at least 1", got(n))
	case v < lo:
		d.ps.add(n.Line, path, "must be at least "+f(lo), got(n))
	case v > hi:
		d.ps.add(n.Line, path, "must be at most "+f(hi), got(n))
	default:
		return true
	}
	return false
}

// number decodes a finite number; positive requires > 0, else >= 0.
func (d *decoder) number(n *yaml.Node, path string, positive bool) (float64, bool) {
	var v float64
	if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || n.Decode(&v) != nil ||
		v != v || v > 1e300 || v < -1e300 {
		d.ps.add(n.Line, path, "must be a number", got(n))
		return 0, false
	}
	switch {
	case v < 0:
		d.ps.add(n.Line, path, "must not be negative", got(n))
	case v == 0 && positive:
		d.ps.add(n.Line, path, "must be greater than 0", got(n))
	default:
		return v, true
	}
	return 0, false
}

// durationShape is what time.ParseDuration takes; a value of this shape that
// it refuses is too long for a time.Duration.
var durationShape = regexp.MustCompile(`^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$`)

// duration decodes a positive Go duration ("90s", "5m", "1h30m").
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.ps.add(n.Line, path, `must be a duration with a unit, like "90s" or "5m"`, got(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	switch {
	case err != nil && durationShape.MatchString(n.Value):
		d.ps.add(n.Line, path, "must be at most "+time.Duration(math.MaxInt64).String(), got(n)) // well formed, too long
	case err != nil:
		d.ps.add(n.Line, path, `must be a duration with a unit, like "90s" or "5m"`, got(n))
	case v < 0:
		d.ps.add(n.Line, path, "must not be negative", got(n))
	case v == 0:
		d.ps.add(n.Line, path, "must be greater than 0", got(n))
	default:
		return v, true
	}
	return 0, false
}

// list decodes a list, calling fn for each item with its path.
func (d *decoder) list(n *yaml.Node, path string, fn func(i int, item *yaml.Node, path string)) {
	if n.Kind != yaml.SequenceNode {
		d.ps.add(n.Line, path, "must be a list", got(n))
		return
	}
	for i, it := range n.Content {
		fn(i, resolveHere(it), fmt.Sprintf("%s[%d]", path, i))
	}
}

// strList decodes a list of non-empty strings; nil for an empty list.
func (d *decoder) strList(n *yaml.Node, path string) []string {
	var out []string
	d.list(n, path, func(_ int, it *yaml.Node, p string) {
		s, ok := d.str(it, p, false)
		if !ok {
			return
		}
		if s == "" {
			d.ps.add(it.Line, p, "must not be empty", "")
			return
		}
		out = append(out, s)
	})
	return out
}

func (d *decoder) nonEmpty(n *yaml.Node, path string) (string, bool) {
	s, ok := d.str(n, path, false)
	if ok && s == "" {
		d.ps.add(n.Line, path, "must not be empty", "")
		return "", false
	}
	return s, ok
}

// addr checks a host:port listen address.
func (d *decoder) addr(n *yaml.Node, path, s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		d.ps.add(n.Line, path, "must be host:port, like 127.0.0.1:8080", got(n))
		return false
	}
	if x, err := strconv.Atoi(port); err != nil || x < 0 || x > 65535 {
		d.ps.add(n.Line, path, "port must be a number from 0 to 65535", got(n))
		return false
	}
	return true
}

func hasCtl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}
