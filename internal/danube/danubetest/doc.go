// Package danubetest provides an in-memory Danube broker for tests, in the
// style of net/http/httptest.
//
// It is NOT Danube: nothing is persisted, there is no WAL, no Raft and no
// admin API. It serves the client-facing gRPC protocol (danube.ProducerService,
// danube.ConsumerService, danube.Discovery, danube.HealthCheck and a subset of
// danube_schema.SchemaRegistry) over a real grpc-go server on a loopback
// listener, and reproduces the broker behaviours a client depends on: topic
// auto-creation, namespaces, name validation, partitions, lookup redirects
// between brokers of one cluster, reliable dispatch with nack and ack-timeout
// redelivery, the 4 MiB request limit (OutOfRange), token authentication and
// health-check CLOSE after a restart. See ../shared/docs/danube-protocol.md §6.
//
// Consumers under load: reliable dispatch is ack-gated (WithMaxUnacked) and
// costs no CPU while deliveries wait for their acks (one timer for the
// earliest ack timeout or nack delay). Non-reliable dispatch never waits for a
// slow consumer, as in Danube: a message for a full per-consumer queue
// (WithConsumerQueue, default 4) is dropped, counted (DroppedMessages) and
// logged (the 1st, 2nd, 4th … drop of each subscription).
//
// Typical use in a test:
//
//	srv := danubetest.NewTestServer(t, danubetest.WithNamespaces("iot"))
//	client, err := danube.NewClient(srv.URL())
//	// ... produce ...
//	if err := srv.WaitForMessages(ctx, "/iot/temps", 3); err != nil {
//		t.Fatal(err)
//	}
//	msgs := srv.Messages("/iot/temps")
//
// Fault injection: Restart drops every producer and consumer (sends then get
// NotFound, health checks CLOSE), Stop and Start close and reopen the
// listener on the same address, FailNext makes the next calls of one RPC
// fail with a chosen code, and SetLatency delays every RPC.
//
// Two brokers sharing one cluster (for redirect tests) are built with
// NewCluster and Cluster.AddBroker; Server.MoveTopic and Server.SetDraining
// simulate topic moves and unloads.
//
// All read-back methods are safe for concurrent use and return copies.
//
// Where it is simpler than Danube, on purpose:
//   - KeyShared picks a consumer by FNV-1a 32 of the routing key (or the
//     producer name) modulo the matching consumers sorted by name, not
//     Danube's ring of 100 virtual nodes per consumer;
//   - GetSchema and GetLatestSchema return the registered definition bytes,
//     not Danube's JSON form, and compatibility is never checked;
//   - an Exclusive or Failover subscription accepts another consumer name
//     once the attached consumer's stream has dropped;
//   - schema validation policies (none, warn, enforce, payload validation)
//     are set per topic with the admin RPCs ConfigureTopicSchema and
//     UpdateTopicValidationPolicy or Server.SetTopicSchemaPolicy; payloads
//     are checked for json_schema (github.com/santhosh-tekuri/jsonschema, not
//     Danube's Rust crate), string and number, never for avro or protobuf;
//   - idle non-reliable subscriptions are never reaped;
//   - Restart and MoveTopic end open receive streams with Unavailable.
package danubetest
