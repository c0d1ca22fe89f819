package danube

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func (c *Client) authCtx(ctx context.Context) (context.Context, error) {
	tok, err := c.token.get()
	if err != nil {
		return nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), nil
}

func (c *Client) unaryAuth(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := c.authCtx(ctx)
	if err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func (c *Client) streamAuth(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := c.authCtx(ctx)
	if err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// tokenSource yields the JWT, re-reading the file when it changes.
type tokenSource struct {
	static string
	path   string

	mu    sync.Mutex
	tok   string
	mtime time.Time
	size  int64
}

func (t *tokenSource) get() (string, error) {
	if t.path == "" {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fi, err := os.Stat(t.path)
	if err != nil {
		if t.tok != "" {
			return t.tok, nil // keep the last good token while the file is being replaced
		}
		return "", fmt.Errorf("danube: reading token file: %w", err)
	}
	if t.tok != "" && fi.ModTime().Equal(t.mtime) && fi.Size() == t.size {
		return t.tok, nil
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		if t.tok != "" {
			return t.tok, nil
		}
		return "", fmt.Errorf("danube: reading token file: %w", err)
	}
	tok := string(bytes.TrimSpace(b))
	if tok == "" {
		if t.tok != "" {
			return t.tok, nil
		}
		return "", fmt.Errorf("danube: token file %s is empty", t.path)
	}
	t.tok, t.mtime, t.size = tok, fi.ModTime(), fi.Size()
	return tok, nil
}
