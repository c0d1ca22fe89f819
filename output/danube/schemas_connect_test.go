package danubeout

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/benthos-danube/benthos-danube/internal/danube"
	"github.com/benthos-danube/benthos-danube/internal/danube/danubetest"
)

// TestSchemasConnect: what Connect does with each entry's subject. A subject
// that must exist and does not, or a version that does not exist, is one
// line and the output stays unconnected; once the registry is fixed the
// next Connect (Benthos retries with back-off) succeeds. An unreachable
// registry is a connection error, retried the same way.
func TestSchemasConnect(t *testing.T) {
	for _, tc := range []struct {
		name     string
		entry    string
		setup    func(t *testing.T, srv *danubetest.Server, c *danube.Client)
		wantErr  string
		fix      func(t *testing.T, srv *danubetest.Server, c *danube.Client)
		wantRegs int
	}{
		{
			name:    "must exist and does not",
			entry:   "{topic: /default/t, subject: s, type: string, auto_register: false}",
			wantErr: "danube output: schemas[0] (topic /default/t, subject s): the subject is not registered and auto_register is false: register it in the schema registry (type string) or set auto_register: true",
			fix: func(t *testing.T, _ *danubetest.Server, c *danube.Client) {
				_, _, err := c.RegisterSchema(context.Background(), "s", "string", nil)
				require.NoError(t, err)
			},
			wantRegs: 1, // the fix's own registration
		},
		{
			name:    "pinned version missing",
			entry:   "{topic: /default/t, subject: s, type: string, version_strategy: pinned, version: 2}",
			wantErr: "danube output: schemas[0] (topic /default/t, subject s): pinned version 2 does not exist (latest is 1): register it or change version",
			fix: func(t *testing.T, _ *danubetest.Server, c *danube.Client) {
				_, v, err := c.RegisterSchema(context.Background(), "s", "string", []byte("v2"))
				require.NoError(t, err)
				require.Equal(t, uint32(2), v)
			},
			wantRegs: 2, // auto-registered once, then the fix
		},
		{
			name:    "minimum above latest",
			entry:   "{topic: /default/t, subject: s, type: string, version_strategy: minimum, version: 2}",
			wantErr: "danube output: schemas[0] (topic /default/t, subject s): the latest version 1 is below the minimum 2: register a newer version or lower version",
			fix: func(t *testing.T, _ *danubetest.Server, c *danube.Client) {
				_, _, err := c.RegisterSchema(context.Background(), "s", "string", []byte("v2"))
				require.NoError(t, err)
			},
			wantRegs: 2,
		},
		{
			name:  "registry unreachable for a moment",
			entry: "{topic: /default/t, subject: s, type: string}",
			setup: func(_ *testing.T, srv *danubetest.Server, _ *danube.Client) {
				srv.FailNext("GetLatestSchema", 1, codes.Unavailable)
			},
			wantErr:  "unreachable",
			wantRegs: 1,
		},
		{
			name:  "registration refused for a moment",
			entry: "{topic: /default/t, subject: s, type: string}",
			setup: func(_ *testing.T, srv *danubetest.Server, _ *danube.Client) {
				srv.FailNext("RegisterSchema", 1, codes.Internal)
			},
			wantErr:  "danube output: schemas[0] (topic /default/t, subject s): registering the subject failed",
			wantRegs: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := danubetest.NewTestServer(t)
			c, err := danube.NewClient(srv.URL())
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			if tc.setup != nil {
				tc.setup(t, srv, c)
			}
			o, _ := newTestOutput(t, fmt.Sprintf("url: %s\ntopic: /default/t\nschemas: [%s]\n", srv.URL(), tc.entry))
			err = connect(t, o)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.wantErr)
			if tc.fix != nil {
				tc.fix(t, srv, c)
			}
			require.NoError(t, connect(t, o), "the next Connect succeeds")
			require.NoError(t, write(t, o, "hello"))
			msgs := srv.Messages("/default/t")
			require.Len(t, msgs, 1)
			require.NotNil(t, msgs[0].SchemaID)
			assert.Equal(t, tc.wantRegs, srv.SchemaRegistrations("s"))
			// Connect again (after a lost connection): nothing is looked up
			// or registered again.
			require.NoError(t, connect(t, o))
			assert.Equal(t, tc.wantRegs, srv.SchemaRegistrations("s"))
		})
	}
}
