package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"sync"
)

// builds caches the programs built by this test process: package path →
// binary. A test binary builds each program once, however many tests ask.
var builds = struct {
	sync.Mutex
	bins map[string]string
}{bins: map[string]string{}}

// BuildBinary builds cmd/benthos-danube into outDir (once per test process;
// later calls return the first build while its file exists) and returns its
// path. When the environment variable BENTHOS_DANUBE_BIN names an existing
// file, that binary is used instead.
func BuildBinary(ctx context.Context, outDir string) (string, error) {
	if p := os.Getenv("BENTHOS_DANUBE_BIN"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("BENTHOS_DANUBE_BIN: %w", err)
		}
		return p, nil
	}
	return Build(ctx, outDir, "./cmd/benthos-danube")
}

// Build builds the main package pkg of this module (a path relative to the
// module root, such as "./tests/bench/rawsub") into outDir, once per test
// process like BuildBinary, and returns the binary's path.
func Build(ctx context.Context, outDir, pkg string) (string, error) {
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.bins[pkg]; ok {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(outDir, path.Base(pkg))
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	builds.bins[pkg] = out
	return out, nil
}
