// Package danubein implements the `danube` Benthos input, which consumes
// Danube topics through the internal Danube client's Consumer.
//
// Importing the package registers the input on Benthos' global environment;
// Register does the same on an isolated environment (tests).
//
// # Acks and nacks
//
// The input is a BatchInput, not an Input, and it is not wrapped in
// AutoRetryNacks(Batched): a nack must reach Danube, whose reliable
// dispatch then redelivers the message (after its nack delay), rather than
// being retried in memory inside the bridge, where a crash would lose it and
// where the broker would still count it as unacked. A plain Input would have
// given one transaction per message; ReadBatch returns the messages already
// received (never waiting for more), one under low load and many under load.
// Its AckFunc acks every message of the batch to Danube after the Benthos
// ack; on a nack it nacks them, or with a *service.BatchError only the
// failed ones (mapped back to the read batch with an Indexer) and acks the
// others.
//
// # Back-pressure
//
// max_unacked slots bound the messages handed to the pipeline and not yet
// acked or nacked to Danube; ReadBatch waits for a free slot. The Consumer's
// receive buffer and the broker's own window (dispatch.max_unacked_messages)
// bound what is in flight before that.
package danubein
