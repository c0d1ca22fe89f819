// Package leaktest is the goroutine-leak check of the test packages that run
// Benthos streams: goleak over the whole test binary, minus the long-lived
// goroutines that Benthos' global environment and metrics start at init.
package leaktest

import "go.uber.org/goleak"

// VerifyTestMain runs the tests (m is the *testing.M of TestMain) and fails
// the binary when goroutines are left over, other than Benthos' own.
func VerifyTestMain(m goleak.TestingM, opts ...goleak.Option) {
	goleak.VerifyTestMain(m, append(BenthosIgnores(), opts...)...)
}

// BenthosIgnores are the goroutines Benthos starts at init and never stops.
func BenthosIgnores() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
	}
}
