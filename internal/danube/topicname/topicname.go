// Package topicname checks Danube topic names. It has no dependencies, so
// both the Danube client and the pure MQTT topic matcher can use it.
package topicname

import (
	"fmt"
	"strconv"
	"strings"
)

// PartPattern is a regular expression matching one namespace or topic part:
// the characters IsNameChar accepts, at least one.
const PartPattern = `[A-Za-z0-9_-]+`

// partitionInfix separates a partitioned topic from its partition number.
const partitionInfix = "-part-"

// Validate reports whether name has the form "/namespace/topic", each part
// made of ASCII letters, digits, '_' and '-'. The broker itself accepts a few
// more forms (Danube's check splits on '/' and lets "a/b/c", "/ns/" and "//t"
// pass, and allows any Unicode letter); clients should send only this one.
func Validate(name string) error {
	if !valid(name) {
		return fmt.Errorf("invalid topic name %q: must have the form \"/namespace/topic\" (letters, digits, '_' and '-' only)", name)
	}
	return nil
}

func valid(name string) bool {
	if len(name) < 4 || name[0] != '/' {
		return false
	}
	slashes := 0
	prev := byte('/')
	for i := 1; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '/':
			if prev == '/' {
				return false
			}
			slashes++
		case !nameChar(c):
			return false
		}
		prev = c
	}
	return slashes == 1 && prev != '/'
}

// IsNameChar reports whether c may appear in a namespace or topic part.
func IsNameChar(c byte) bool {
	return nameChar(c)
}

func nameChar(c byte) bool {
	return c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// Partition returns the name of partition i of topic base: "<base>-part-<i>".
func Partition(base string, i int) string {
	return base + partitionInfix + strconv.Itoa(i)
}

// SplitPartition splits a partition name "<base>-part-<N>" (N decimal digits)
// into base and N. For any other name it returns name and -1.
func SplitPartition(name string) (base string, n int) {
	i := strings.LastIndex(name, partitionInfix)
	if i < 0 {
		return name, -1
	}
	suf := name[i+len(partitionInfix):]
	if suf == "" || strings.Trim(suf, "0123456789") != "" {
		return name, -1
	}
	n, err := strconv.Atoi(suf)
	if err != nil {
		return name, -1
	}
	return name[:i], n
}
