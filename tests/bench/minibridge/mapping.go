package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/benthos-danube/benthos-danube/internal/danube"
)

// mapping routes the MQTT topics matching filter to one Danube topic.
type mapping struct {
	filter     string
	levels     []string
	topic      string
	qos        byte
	partitions int
	reliable   bool
	producer   *danube.Producer
}

// parseMapping reads FILTER=TOPIC[,qos=N][,partitions=N][,reliable=BOOL].
// As in the mqtt input, qos defaults to 1, partitions to 0 and reliable
// dispatch to true unless qos is 0.
func parseMapping(s string) (*mapping, error) {
	filter, rest, ok := strings.Cut(s, "=")
	if !ok || filter == "" {
		return nil, fmt.Errorf("mapping %q: want FILTER=TOPIC[,qos=N][,partitions=N][,reliable=BOOL]", s)
	}
	parts := strings.Split(rest, ",")
	mp := &mapping{filter: filter, levels: strings.Split(filter, "/"), topic: parts[0], qos: 1}
	if err := danube.ValidateTopic(mp.topic); err != nil {
		return nil, fmt.Errorf("mapping %q: %w", s, err)
	}
	for i, l := range mp.levels {
		if (strings.Contains(l, "#") && (l != "#" || i != len(mp.levels)-1)) || (strings.Contains(l, "+") && l != "+") {
			return nil, fmt.Errorf("mapping %q: invalid MQTT filter", s)
		}
	}
	reliableSet := false
	for _, opt := range parts[1:] {
		k, v, _ := strings.Cut(opt, "=")
		switch k {
		case "qos":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1 {
				return nil, fmt.Errorf("mapping %q: qos must be 0 or 1", s)
			}
			mp.qos = byte(n)
		case "partitions":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("mapping %q: bad partitions %q", s, v)
			}
			mp.partitions = n
		case "reliable":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("mapping %q: bad reliable %q", s, v)
			}
			mp.reliable, reliableSet = b, true
		default:
			return nil, fmt.Errorf("mapping %q: unknown option %q", s, k)
		}
	}
	if !reliableSet {
		mp.reliable = mp.qos > 0
	}
	return mp, nil
}

// matches reports whether the MQTT topic matches the filter split into
// levels ("+" one level, a final "#" any number, including none). Topics
// starting with '$' match no wildcard in the first level.
func matches(levels []string, topic string) bool {
	if strings.HasPrefix(topic, "$") && len(levels) > 0 && (levels[0] == "+" || levels[0] == "#") {
		return false
	}
	for i, l := range levels {
		if l == "#" {
			return true
		}
		seg, rest, more := strings.Cut(topic, "/")
		if l != "+" && l != seg {
			return false
		}
		if !more {
			return i == len(levels)-1 || (i == len(levels)-2 && levels[i+1] == "#")
		}
		topic = rest
	}
	return false
}
