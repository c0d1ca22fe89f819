package main

import (
	"strings"
	"testing"
)

func TestMatches(t *testing.T) {
	cases := []struct {
		filter, topic string
		want          bool
	}{
		{"bench/q0/+", "bench/q0/d1", true},
		{"bench/q0/+", "bench/q0/d1/x", false},
		{"bench/q0/+", "bench/q0", false},
		{"bench/q0/+", "bench/q1/d1", false},
		{"bench/q0/+", "bench/q0/", true},
		{"a/b", "a/b", true},
		{"a/b", "a/bc", false},
		{"a/+/c", "a/x/c", true},
		{"a/+/c", "a//c", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"a/#", "b/a", false},
		{"#", "x/y", true},
		{"+/+", "a/b", true},
		{"+/+", "a", false},
		{"+", "$SYS", false},
		{"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
	}
	for _, tc := range cases {
		if got := matches(strings.Split(tc.filter, "/"), tc.topic); got != tc.want {
			t.Errorf("matches(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestParseMapping(t *testing.T) {
	cases := []struct {
		in         string
		err        bool
		topic      string
		qos        byte
		partitions int
		reliable   bool
	}{
		{in: "bench/q0/+=/default/tp_q0,qos=0", topic: "/default/tp_q0", qos: 0, reliable: false},
		{in: "bench/q1/+=/default/tp_q1", topic: "/default/tp_q1", qos: 1, reliable: true},
		{in: "a/#=/ns/t,qos=1,partitions=4,reliable=false", topic: "/ns/t", qos: 1, partitions: 4, reliable: false},
		{in: "a/+=/ns/t,qos=0,reliable=true", topic: "/ns/t", qos: 0, reliable: true},
		{in: "a/+", err: true},
		{in: "=/ns/t", err: true},
		{in: "a/+=notatopic", err: true},
		{in: "a/#/b=/ns/t", err: true},
		{in: "a/b+=/ns/t", err: true},
		{in: "a=/ns/t,qos=2", err: true},
		{in: "a=/ns/t,partitions=-1", err: true},
		{in: "a=/ns/t,color=red", err: true},
	}
	for _, tc := range cases {
		mp, err := parseMapping(tc.in)
		if tc.err {
			if err == nil {
				t.Errorf("parseMapping(%q): no error", tc.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseMapping(%q): %v", tc.in, err)
			continue
		}
		if mp.topic != tc.topic || mp.qos != tc.qos || mp.partitions != tc.partitions || mp.reliable != tc.reliable {
			t.Errorf("parseMapping(%q) = topic %q qos %d partitions %d reliable %v", tc.in, mp.topic, mp.qos, mp.partitions, mp.reliable)
		}
	}
}
