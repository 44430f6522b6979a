package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocsNameEveryKey: every key the decoder takes has its row in the
// README's configuration table and its line in config.example.yaml, and the
// README's live reload section says when a change to it takes effect.
func TestDocsNameEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string // the lines of the README's tables
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "|") {
			rows = append(rows, line)
		}
	}
	_, reload, ok := strings.Cut(string(readme), "\n### Live reload\n")
	if !ok {
		t.Fatal("the README has no live reload section")
	}
	reload, _, _ = strings.Cut(reload, "\n## ")
	onReloadText, onRestartText, ok := strings.Cut(reload, "Keys bound at start")
	if !ok {
		t.Fatal("the live reload section does not say which keys are bound at start")
	}
	n := 0
	for _, k := range table() {
		if k.decode == nil { // a section: its keys follow
			continue
		}
		n++
		code := "`" + k.path + "`"
		inTable := false
		for _, r := range rows {
			inTable = inTable || strings.Contains(r, code)
		}
		if !inTable {
			t.Errorf("the README's configuration table has no row for %s", code)
		}
		leaf := k.path[strings.LastIndexByte(k.path, '.')+1:]
		if !strings.Contains(string(example), "\n"+leaf+":") && !strings.Contains(string(example), " "+leaf+":") {
			t.Errorf("config.example.yaml lacks %s", k.path)
		}
		text, when := onReloadText, "applies on reload"
		if k.effect == onRestart {
			text, when = onRestartText, "is bound at start"
		}
		top, _, _ := strings.Cut(k.path, ".")
		if !strings.Contains(text, code) && !strings.Contains(text, "`"+top+".*`") {
			t.Errorf("the README's live reload section does not say that %s %s", code, when)
		}
	}
	if n < 40 {
		t.Errorf("only %d keys in the decoder's table", n)
	}
}
