// Package danube is a gRPC client for the Danube messaging broker, written
// from Danube's wire protocol (the services of danube-messaging/danube's
// DanubeApi.proto and SchemaRegistry.proto, rewritten for us in
// internal/danubepb) on top of the code generated from them.
//
// A Client owns one gRPC connection per broker address; every Producer and
// Consumer created from it shares those connections. Producers handle topic
// lookup and redirects, partitioned topics with FNV-1a key routing, transient
// retries with jittered linear backoff and transparent re-creation after a
// broker restart or a topic move. Consumers subscribe to every partition of a
// topic and resubscribe after the receive stream is lost.
//
// Every goroutine started by this package is owned by a Client, Producer or
// Consumer and stops when its owner is closed.
package danube
