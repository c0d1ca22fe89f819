package ordering

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSequencerOrdersAcrossCalls(t *testing.T) {
	s := NewSequencer[string]()
	var got []int64
	done := make(chan struct{}, 10)
	mk := func(seq int64) Item[string] {
		return Item[string]{Seq: seq, Domain: "k", Job: Func(func() { got = append(got, seq); done <- struct{}{} })}
	}
	// Arrival order 3, 2, 4(skip), 1: admission restores 1, 2, 3.
	s.Submit(mk(3))
	s.Submit(mk(2))
	s.Skip(4)
	assert.Empty(t, got)
	s.Submit(mk(1))
	for range 3 {
		<-done
	}
	assert.Equal(t, []int64{1, 2, 3}, got)
	// A retried (old) stamp is admitted at once.
	s.Submit(mk(2))
	<-done
	s.Close()
}
