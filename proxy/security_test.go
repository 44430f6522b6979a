package proxy

import (
	"net/http"
	"testing"
)

// TestAdminBearerSchemeAnyCase: the scheme of the admin token is
// case-insensitive (RFC 7235); the token itself is not.
func TestAdminBearerSchemeAnyCase(t *testing.T) {
	h := startAdminProxy(t)
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"Bearer " + h.cfg.AdminToken, http.StatusOK},
		{"bearer " + h.cfg.AdminToken, http.StatusOK},
		{"BEARER " + h.cfg.AdminToken, http.StatusOK},
		{"bEaReR " + h.cfg.AdminToken, http.StatusOK},
		{"Bearer S3CRET-TOKEN", http.StatusUnauthorized},
		{"Basic " + h.cfg.AdminToken, http.StatusUnauthorized},
		{"Bearer", http.StatusUnauthorized},
	} {
		req, err := http.NewRequest(http.MethodGet, h.adminURL+"/stats", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", tc.auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
}
