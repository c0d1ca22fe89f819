// Package danubepb holds the Go code generated from our own .proto files for
// the Danube client protocol (proto packages danube and danube_schema).
//
// Regenerate it with `go generate ./internal/danubepb` after editing a .proto
// file; the generator versions are pinned in go.mod.
package danubepb

//go:generate sh gen.sh
