// Package danubeout implements the `danube` Benthos batch output, which
// writes messages to Danube topics through the internal Danube client.
//
// Importing the package registers the output on Benthos' global environment;
// Register does the same on an isolated environment (tests).
//
// Files: output.go (the output, its wiring, Connect, Close and the producers
// it creates), config.go (the ParsedConfig read into an output at start-up,
// the batching policy with the ordering stage), check.go (the checks lint and
// start-up share), spec.go (the spec, field names, registration), write.go
// (WriteBatch: prepare, send, settle the outcomes), producers.go (the
// producer cache), attributes.go (metadata as Danube attributes), meta.go
// (typed values read from metadata), schemas.go (schema bindings and registry
// subjects), deadletter.go (dead letters), hints.go (what to do about an
// error; the tls, token and token_file fields and their advice are
// internal/danubeconn, shared with the danube input) and redact.go (the url as
// logs show it).
//
// # Ordering
//
// Benthos runs max_in_flight writer goroutines that race each other, so the
// order in which WriteBatch is entered is not the order in which the pipeline
// emitted the messages. The output therefore appends a batch processor to its
// batching policy that stamps every message with a counter (metadata
// danube_output_seq) in Benthos' single batching goroutine (internal/ordering). WriteBatch hands
// keyed messages to a sequencer that admits them strictly in stamp order into
// one FIFO queue per (producer, key), each sent one at a time. Messages
// without a key are sent concurrently. A failed message is retried by Benthos
// later, after later messages of its key may have been delivered: only a
// failure can reorder a key.
//
// # Schemas
//
// The schemas field binds the producers of each topic to a registry subject
// (schemas.go; checked in check.go with the other fields). Connect registers
// missing subjects once per output lifetime and checks the version strategy;
// producers are created with the entry's SchemaRef, so every message carries
// schema id and version. A json_schema entry's file is compiled at start-up
// and prepare validates every payload with it: a failure dead-letters that
// message (reason schema_invalid) without sending it.
package danubeout
