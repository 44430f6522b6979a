package proxy

import "time"

// history keeps outcome counts per interval for the dashboard's chart.
// PLACEHOLDER: being written by the dashboard engineer.
type history struct{}

func newHistory() *history { return &history{} }

func (h *history) observe(ev event, now time.Time) {}
