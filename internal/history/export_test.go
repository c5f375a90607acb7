package history

import "time"

// SetClock makes the recorder read its time from now, starting its
// interval at now().
func (r *Recorder) SetClock(now func() time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.now = now
	r.since = now()
}
