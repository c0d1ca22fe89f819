package docgen_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/benthos-danube/benthos-danube/internal/docgen"

	_ "github.com/benthos-danube/benthos-danube/input/danube"
	_ "github.com/benthos-danube/benthos-danube/input/mqtt"
	_ "github.com/benthos-danube/benthos-danube/metrics/prometheus"
	_ "github.com/benthos-danube/benthos-danube/output/danube"
	_ "github.com/benthos-danube/benthos-danube/output/mqtt"
	_ "github.com/benthos-danube/benthos-danube/processor/connectorpayload"
)

var update = flag.Bool("update", false, "rewrite the reference section of README.md")

func TestReadmeReferenceIsCurrent(t *testing.T) {
	readme := filepath.Join("..", "..", "README.md")
	doc, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := docgen.Reference(service.GlobalEnvironment(), docgen.Components)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(ref), "\n") {
		if strings.HasPrefix(l, "==") || strings.Contains(l, "xref:") {
			t.Errorf("reference line %d is AsciiDoc, not Markdown: %q", i+1, l)
		}
	}
	want, err := docgen.Splice(doc, ref)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(doc, want) {
		return
	}
	if *update {
		if err := os.WriteFile(readme, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("the config reference in README.md is stale: run `go generate ./internal/docgen` and commit the result")
}

func TestSpliceNeedsMarkers(t *testing.T) {
	if _, err := docgen.Splice([]byte("no markers"), []byte("x")); err == nil {
		t.Fatal("Splice accepted a document without markers")
	}
	got, err := docgen.Splice([]byte("a\n"+docgen.BeginMarker+"\nold\n"+docgen.EndMarker+"\nb"), []byte("new"))
	if err != nil {
		t.Fatal(err)
	}
	want := "a\n" + docgen.BeginMarker + "\n\nnew\n\n" + docgen.EndMarker + "\nb"
	if string(got) != want {
		t.Fatalf("Splice = %q, want %q", got, want)
	}
}
