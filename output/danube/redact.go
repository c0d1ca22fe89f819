package danubeout

import "github.com/benthos-danube/benthos-danube/internal/redact"

// shownURL is the url for logs and errors, its password masked: Benthos logs
// connection errors and shows them on the unauthenticated /ready endpoint.
func (o *output) shownURL() string { return redact.URL(o.url) }
