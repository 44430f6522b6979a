package config

import (
	"errors"

	"gopkg.in/yaml.v3"

	"github.com/sessionproxy/sessionproxy/proxy/rules"
)

// compileRules compiles the decoded rules into c.Rules, reporting each
// problem at the line of the key it is about, or else of its rule.
func (d *decoder) compileRules(c *Config, specs []rules.Spec, lines []map[string]int) {
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
		if p.Rule >= 0 && p.Rule < len(lines) {
			line = lines[p.Rule][p.Field]
			if line == 0 {
				line = lines[p.Rule][""]
			}
		}
		d.ps.add(line, p.Path(), p.Msg, p.Got)
	}
}

// rules decodes the rules list into specs, with the line of each field
// ("" = the rule itself) for problems found when compiling.
func (d *decoder) rules(n *yaml.Node, path string) ([]rules.Spec, []map[string]int) {
	var specs []rules.Spec
	var lines []map[string]int
	d.list(n, path, func(i int, it *yaml.Node, rp string) {
		var s rules.Spec
		ln := map[string]int{"": it.Line}
		conds := 0
		nonEmptyStr := func(v *yaml.Node, p string) (string, bool) {
			str, ok := d.str(v, p, false)
			if ok && str == "" {
				d.ps.add(v.Line, p, "must not be empty (leave the key out)", "")
				return "", false
			}
			return str, ok
		}
		d.mapping(it, rp, []field{
			{"name", func(v *yaml.Node, p string) {
				if str, ok := d.str(v, p, false); ok {
					s.Name, ln["name"] = str, v.Line
				}
			}},
			{"status", func(v *yaml.Node, p string) {
				conds++
				ln["status"] = v.Line
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
					s.Status = append(s.Status, x.Value)
				}
			}},
			{"body", func(v *yaml.Node, p string) {
				conds++
				if str, ok := nonEmptyStr(v, p); ok {
					s.Body, ln["body"] = str, v.Line
				}
			}},
			{"header", func(v *yaml.Node, p string) {
				conds++
				if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
					d.ps.add(v.Line, p, "must be a mapping of header name to regex", got(v))
					return
				}
				d.headerMap(v, p, &s, ln)
			}},
			{"host", func(v *yaml.Node, p string) {
				conds++
				if str, ok := nonEmptyStr(v, p); ok {
					s.Host, ln["host"] = str, v.Line
				}
			}},
			{"error", func(v *yaml.Node, p string) {
				conds++
				if str, ok := d.enum(v, p, rules.ErrKindConnect, rules.ErrKindTLS, rules.ErrKindTimeout, rules.ErrKindAny); ok {
					s.Error, ln["error"] = str, v.Line
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
			return
		}
		if conds > 0 && len(s.Status) == 0 && s.Body == "" && len(s.Header) == 0 && s.Host == "" && s.Error == "" {
			// every condition was bad and reported; do not also say none was given
			s.Host = "*"
		}
		specs = append(specs, s)
		lines = append(lines, ln)
	})
	return specs, lines
}

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
