package sites

import (
	"net/http"
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	tests := []struct {
		name, value string
		want        time.Duration
		ok          bool
	}{
		{"absent", "", 0, false},
		{"seconds", "120", 2 * time.Minute, true},
		{"zero", "0", 0, true},
		{"spaces", "  5 ", 5 * time.Second, true},
		{"leading zeros", "007", 7 * time.Second, true},
		{"an hour", "3600", time.Hour, true},
		{"capped", "3601", time.Hour, true},
		{"huge", "99999999999999999999999999", time.Hour, true},
		{"negative", "-5", 0, true},
		{"date", date(90 * time.Second), 90 * time.Second, true},
		{"date in the past", date(-time.Minute), 0, true},
		{"date far ahead", date(48 * time.Hour), time.Hour, true},
		{"RFC 850 date", now.Add(time.Minute).Format("Monday, 02-Jan-06 15:04:05 GMT"), time.Minute, true},
		{"ANSI C date", now.Add(time.Minute).Format(time.ANSIC), time.Minute, true},
		{"fraction", "1.5", 0, false},
		{"plus", "+5", 0, false},
		{"minus alone", "-", 0, false},
		{"unit", "5s", 0, false},
		{"garbage", "soon", 0, false},
		{"bad date", "Fri, 32 Dec 2026 16:00:00 GMT", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			got, ok := RetryAfter(h, now)
			if got != tt.want || ok != tt.ok {
				t.Errorf("RetryAfter(%q) = %v, %v; want %v, %v", tt.value, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "-1", "Fri, 04 Dec 2026 16:01:00 GMT", "x", "", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		got, ok := RetryAfter(http.Header{"Retry-After": {v}}, now)
		if got < 0 || got > MaxRetryAfter || (!ok && got != 0) {
			t.Fatalf("RetryAfter(%q) = %v, %v", v, got, ok)
		}
	})
}
