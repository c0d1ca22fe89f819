package mqtt

import "time"

// Re-delivery of nacked messages (auto_replay_nacks): ReadBatch takes the
// due ones first (dueRetries); the ack path queues a nacked one (pushRetry).

// retryDelay is the wait before re-delivering a message nacked attempts
// times: the first two retries are immediate, then 1 ms doubling to 1 s.
func retryDelay(attempts int) time.Duration {
	if attempts <= 2 {
		return 0
	}
	return min(time.Millisecond<<min(attempts-3, 10), time.Second)
}

// dueRetries removes and returns up to max nacked messages that are due, in
// the order they were nacked, and the wait until the earliest remaining one
// is due (0 when none remains).
func (in *input) dueRetries(now time.Time, max int) ([]*delivery, time.Duration) {
	in.retryMu.Lock()
	defer in.retryMu.Unlock()
	var due []*delivery
	var wait time.Duration
	keep := in.retries[:0]
	for _, it := range in.retries {
		d := it.due.Sub(now)
		switch {
		case d <= 0 && len(due) < max:
			due = append(due, it)
			continue
		case d <= 0:
			d = time.Millisecond // due, but past max: come back at once
		}
		if wait == 0 || d < wait {
			wait = d
		}
		keep = append(keep, it)
	}
	clear(in.retries[len(keep):])
	in.retries = keep
	in.nRetries.Add(-int64(len(due)))
	return due, wait
}

func (in *input) pushRetry(it *delivery) {
	it.attempts++
	it.due = time.Now().Add(retryDelay(it.attempts))
	in.retryMu.Lock()
	in.retries = append(in.retries, it)
	in.nRetries.Add(1)
	in.retryMu.Unlock()
	select {
	case in.retryNotify <- struct{}{}:
	default:
	}
}
