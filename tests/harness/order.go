package harness

import "sort"

// Displaced marks the messages that are out of order in a delivery sequence:
// everything outside one longest strictly increasing subsequence of seqs. Its
// count is the least number of messages that would have to move to restore
// the order, so one message that jumps ahead counts once, not once for every
// message it overtook.
func Displaced(seqs []int64) []bool {
	n := len(seqs)
	out := make([]bool, n)
	if n == 0 {
		return out
	}
	tails := []int{} // tails[k] = index of the smallest tail of an increasing run of length k+1
	prev := make([]int, n)
	for i, s := range seqs {
		k := sort.Search(len(tails), func(k int) bool { return seqs[tails[k]] >= s })
		if k > 0 {
			prev[i] = tails[k-1]
		} else {
			prev[i] = -1
		}
		if k == len(tails) {
			tails = append(tails, i)
		} else {
			tails[k] = i
		}
	}
	for i := range out {
		out[i] = true
	}
	for i := tails[len(tails)-1]; i >= 0; i = prev[i] {
		out[i] = false
	}
	return out
}
