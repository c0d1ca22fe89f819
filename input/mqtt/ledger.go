package mqtt

import "sync"

// ledger lists the messages handed to the pipeline and not yet
// acknowledged, in arrival order, so that the age of the oldest one can be
// read at any time: one number that rises during any stall, whatever its
// cause. Entries are marked done by their ack and dropped once every older
// entry is done too; the ledger is bounded by max_unacked.
type ledger struct {
	mu    sync.Mutex
	items []*delivery
	head  int
}

// add records a delivery handed to the pipeline for the first time.
func (l *ledger) add(d *delivery) {
	l.mu.Lock()
	l.items = append(l.items, d)
	l.mu.Unlock()
}

// done marks d acknowledged and drops the done entries at the head.
func (l *ledger) done(d *delivery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	d.settled = true
	for l.head < len(l.items) && l.items[l.head].settled {
		l.items[l.head] = nil
		l.head++
	}
	switch {
	case l.head == len(l.items):
		l.items, l.head = l.items[:0], 0
	case l.head >= 1024 && l.head*2 >= len(l.items):
		n := copy(l.items, l.items[l.head:])
		clear(l.items[n:])
		l.items, l.head = l.items[:n], 0
	}
}

// oldest returns the arrival time (unix nanoseconds) of the oldest
// unacknowledged delivery.
func (l *ledger) oldest() (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.head == len(l.items) {
		return 0, false
	}
	return l.items[l.head].at, true
}
