package danube

import (
	"fmt"
	"sort"

	"github.com/benthos-danube/benthos-danube/internal/danube/topicname"
)

// ValidateTopic checks that name has the form "/namespace/topic", each part
// made of ASCII letters, digits, '_' and '-'.
func ValidateTopic(name string) error {
	if err := topicname.Validate(name); err != nil {
		return fmt.Errorf("danube: %w", err)
	}
	return nil
}

// PartitionForKey returns the partition of key: FNV-1a 64 over the key's
// bytes, modulo partitions as unsigned 64-bit, as the official clients do.
// It returns 0 when partitions <= 1.
func PartitionForKey(key string, partitions int) int {
	if partitions <= 1 {
		return 0
	}
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 0x100000001b3
	}
	return int(h % uint64(partitions))
}

// partitionName returns the name of partition i of topic: "<topic>-part-<i>".
func partitionName(topic string, i int) string { return topicname.Partition(topic, i) }

// partitionNumber returns N for a partition name "<topic>-part-N" and -1
// for any other name.
func partitionNumber(topic string) int {
	_, n := topicname.SplitPartition(topic)
	return n
}

// filterPartitions keeps the exact name or "<base>-part-<digits>" names,
// ordered by partition number.
func filterPartitions(base string, names []string) []string {
	type part struct {
		name string
		n    int
	}
	var parts []part
	for _, n := range names {
		if n == base {
			return []string{base}
		}
		if b, num := topicname.SplitPartition(n); num >= 0 && b == base {
			parts = append(parts, part{n, num})
		}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].n < parts[j].n })
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.name
	}
	return out
}
