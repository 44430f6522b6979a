package config

import (
	"reflect"
	"testing"
)

// TestConfigHostGlobsAsWritten: sites' and mitm.skip_hosts' globs written
// the way the host appears in a URL ("[::1]", "example.com.") are kept in
// the form they are matched in, and match the host they name.
func TestConfigHostGlobsAsWritten(t *testing.T) {
	c, err := Parse("t.yaml", []byte(`
sites: [{host: '[::1]'}, {host: 'Example.com.'}]
mitm: {skip_hosts: ['[2001:db8::1]', '*.bank.example.']}
`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Site{{Host: "::1"}, {Host: "example.com"}}; !reflect.DeepEqual(c.Sites, want) {
		t.Errorf("sites = %+v, want %+v", c.Sites, want)
	}
	for _, host := range []string{"[2001:db8::1]:443", "www.bank.example.", "www.bank.example:443"} {
		if !c.MITM.SkipHost(host) {
			t.Errorf("SkipHost(%q) = false, want true", host)
		}
	}
	if _, err := Parse("t.yaml", []byte("sites: [{host: '.'}]")); err == nil {
		t.Error(`sites host ".": no error`)
	}
}
