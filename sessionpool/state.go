package sessionpool

import (
	"time"
)

// stateVersion is the "version" of the documents this package writes.
const stateVersion = 1

// PoolState is a snapshot of a pool: both counts and every held session.
type PoolState struct {
	UsableSessionsCount  int            `json:"usableSessionsCount"`
	RetiredSessionsCount int            `json:"retiredSessionsCount"`
	Sessions             []SessionState `json:"sessions"`
}

// SessionState is a snapshot of one session, with the JSON names of the
// persisted document. UserData is never nil.
type SessionState struct {
	ID string `json:"id"`
	// Site is the site of the pool holding the session (Sites), "" for a
	// pool opened by Open. It is not written to the persisted document:
	// each site's pool has a document of its own.
	Site                string         `json:"site"`
	Cookies             []Cookie       `json:"cookies"`
	UserData            map[string]any `json:"userData"`
	ProxyURL            string         `json:"proxyUrl"`
	Fingerprint         string         `json:"fingerprint,omitempty"`
	MaxErrorScore       float64        `json:"maxErrorScore"`
	ErrorScoreDecrement float64        `json:"errorScoreDecrement"`
	CreatedAt           time.Time      `json:"createdAt"`
	ExpiresAt           time.Time      `json:"expiresAt"`
	UsageCount          int            `json:"usageCount"`
	MaxUsageCount       int            `json:"maxUsageCount"`
	ErrorScore          float64        `json:"errorScore"`
	Retired             bool           `json:"retired"`
	// PausedUntil is the end of the session's pause (Session.Pause), zero
	// for none; the document has it only when set.
	PausedUntil time.Time `json:"pausedUntil,omitzero"`
}
