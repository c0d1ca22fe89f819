package danubeout

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestClientLogsReachBenthosLogger: the Danube client logs a producer lost
// after a broker restart and its re-creation through the output's logger.
func TestClientLogsReachBenthosLogger(t *testing.T) {
	srv := danubetest.NewTestServer(t)
	o, logs := newTestOutput(t, "url: "+srv.Addr()+"\ntopic: /default/logged\n")
	require.NoError(t, connect(t, o))
	require.NoError(t, write(t, o, "before"))
	srv.Restart()
	require.NoError(t, write(t, o, "after"))
	require.Equal(t, 2, srv.MessageCount("/default/logged"))
	out := logs.String()
	assert.Contains(t, out, `msg="danube producer lost, recreating"`, "logs:\n%s", out)
	assert.Contains(t, out, `msg="danube producer recreated"`, "logs:\n%s", out)
	assert.Contains(t, out, "topic=/default/logged", "logs:\n%s", out)
}
