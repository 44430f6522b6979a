package config

import (
	"errors"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
)

// ruleSource is where one decoded rule stands in the file: its index in the
// rules list (items that are no rule at all are not decoded, so it may be
// larger than the spec's) and the line of each of its keys ("" = the rule).
type ruleSource struct {
	index int
	lines map[string]int
}

// compileRules compiles the decoded rules into c.Rules, reporting each
// problem at the path and line of the key it is about, or else of its rule.
func (d *decoder) compileRules(c *Config, specs []rules.Spec, srcs []ruleSource) {
	rs, err := rules.Compile(specs, c.DefaultAction)
	if err == nil {
		c.Rules = rs
		return
	}
	var re *rules.Error
	if !errors.As(err, &re) {
		d.ps.add(0, "rules", err.Error(), "") // not one of Compile's
		return
	}
	for _, p := range re.Problems {
		line := 0
		if p.Rule >= 0 && p.Rule < len(srcs) {
			src := srcs[p.Rule]
			line = src.lines[p.Field]
			if line == 0 {
				line = src.lines[""]
			}
			p.Rule = src.index
		}
		d.ps.add(line, p.Path(), p.Msg, p.Got)
	}
}

// rulesKey decodes the rules key into d.specs and d.ruleSrcs.
func (d *decoder) rulesKey(v *yaml.Node, p string, _ *Config) bool {
	d.specs, d.ruleSrcs = d.rules(v, p)
	return true
}

// rules decodes the rules list into specs, with where each stands in the
// file for problems found when compiling.
func (d *decoder) rules(n *yaml.Node, path string) ([]rules.Spec, []ruleSource) {
	var specs []rules.Spec
	var srcs []ruleSource
	d.list(n, path, func(i int, it *yaml.Node, rp string) {
		if s, ln, ok := d.rule(it, rp); ok {
			specs = append(specs, s)
			srcs = append(srcs, ruleSource{index: i, lines: ln})
		}
	})
	return specs, srcs
}

// rule decodes one rule of the list at path into its spec and the line of
// each of its keys; false when it is not a mapping.
func (d *decoder) rule(it *yaml.Node, path string) (rules.Spec, map[string]int, bool) {
	var s rules.Spec
	ln := map[string]int{"": it.Line}
	conds := 0
	d.mapping(it, path, []field{
		{"name", func(v *yaml.Node, p string) {
			if str, ok := d.str(v, p, false); ok {
				s.Name, ln["name"] = str, v.Line
			}
		}},
		{"status", func(v *yaml.Node, p string) {
			conds++
			ln["status"] = v.Line
			s.Status = d.ruleStatus(v, p)
		}},
		{"body", func(v *yaml.Node, p string) {
			conds++
			if str, ok := d.condition(v, p); ok {
				s.Body, ln["body"] = str, v.Line
			}
		}},
		{"header", func(v *yaml.Node, p string) {
			conds++
			if v.Kind != yaml.MappingNode {
				d.ps.add(v.Line, p, "must be a mapping of header name to regex", got(v))
				return
			}
			if len(v.Content) == 0 {
				d.ps.add(v.Line, p, "must name at least one header", "{}")
				return
			}
			d.headerMap(v, p, &s, ln)
		}},
		{"host", func(v *yaml.Node, p string) {
			conds++
			if str, ok := d.condition(v, p); ok {
				s.Host, ln["host"] = str, v.Line
			}
		}},
		{"error", func(v *yaml.Node, p string) {
			conds++
			if k, ok := oneOf(d, v, p, upstream.KindConnect, upstream.KindTLS, upstream.KindTimeout, rules.ErrKindAny); ok {
				s.Error, ln["error"] = k, v.Line
			}
		}},
		{"action", func(v *yaml.Node, p string) {
			if a, ok := oneOf(d, v, p, rules.ActionGood, rules.ActionBad, rules.ActionRetire, rules.ActionNone); ok {
				s.Action, ln["action"] = a, v.Line
			} else {
				s.Action = rules.ActionNone // reported; keep compile from repeating it
			}
		}},
		{"retry", func(v *yaml.Node, p string) {
			if b, ok := d.boolean(v, p); ok {
				s.Retry = b
			}
		}},
	})
	if it.Kind != yaml.MappingNode {
		return s, ln, false
	}
	if conds > 0 && len(s.Status) == 0 && s.Body == "" && len(s.Header) == 0 && s.Host == "" && s.Error == "" {
		// every condition was bad and reported; do not also say none was given
		s.Host = "*"
	}
	return s, ln, true
}

// condition decodes a string condition, which must not be empty.
func (d *decoder) condition(v *yaml.Node, p string) (string, bool) {
	str, ok := d.str(v, p, false)
	if ok && str == "" {
		d.ps.add(v.Line, p, "must not be empty (leave the key out)", "")
		return "", false
	}
	return str, ok
}

// ruleStatus decodes a status condition: a code or class, or a list of
// them; only the valid ones are returned.
func (d *decoder) ruleStatus(v *yaml.Node, p string) []string {
	var out []string
	items := []*yaml.Node{v}
	if v.Kind == yaml.SequenceNode {
		items = v.Content
		if len(items) == 0 {
			d.ps.add(v.Line, p, "must not be empty (leave the key out)", "")
		}
	}
	for _, x := range items {
		x = resolve(x)
		if x.Kind != yaml.ScalarNode || (x.Tag != "!!int" && x.Tag != "!!str") {
			d.ps.add(x.Line, p, `must be a status code or a class like "4xx", or a list of them`, got(x))
			continue
		}
		if _, _, ok := rules.ParseStatus(x.Value); !ok {
			d.ps.add(x.Line, p, `must be a status code 100-599 or a class like "4xx"`, got(x))
			continue
		}
		out = append(out, x.Value)
	}
	return out
}

// headerMap decodes a header condition: header names to regexes, "" (or
// null) for "present".
func (d *decoder) headerMap(v *yaml.Node, p string, s *rules.Spec, ln map[string]int) {
	d.pairs(v, p, "header names must be strings", func(k, re *yaml.Node, hp string) {
		str := ""
		if !isNull(re) {
			var ok bool
			if str, ok = d.str(re, hp, false); !ok {
				return
			}
		}
		if s.Header == nil {
			s.Header = map[string]string{}
		}
		s.Header[k.Value] = str
		ln["header."+k.Value] = k.Line
	})
}
