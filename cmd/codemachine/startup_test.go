package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// buildTags are make build's tags (the Makefile's TAGS); the tests that
// build the binary build it with them.
const buildTags = "urfave_cli_no_docs"

// unusedAtStartup are packages that must not be linked into the binary: Go
// initialises every linked package before main, so each one slows every
// command down, version and status included, whether it is used or not.
var unusedAtStartup = []string{
	"github.com/russross/blackfriday", // urfave/cli's man pages (urfave_cli_no_docs)
	"github.com/cpuguy83/go-md2man",
	"google.golang.org/grpc", // the OTel SDK's OTLP exporter; telemetry encodes its few messages itself
	"google.golang.org/protobuf",
	"go.opentelemetry.io",
	"github.com/go-git/go-git/v5/plumbing/transport", // gitstate opens go-git's storage only; git itself fetches and pushes
	"golang.org/x/crypto/ssh",
	"github.com/skeema/knownhosts",
}

// TestStartupLinksOnlyWhatIsUsed lists the binary's packages as make build
// links them and fails on any that no command uses.
func TestStartupLinksOnlyWhatIsUsed(t *testing.T) {
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^TAGS\s*:=\s*(.*)$`).FindSubmatch(makefile); m == nil || strings.TrimSpace(string(m[1])) != buildTags {
		t.Fatalf("the Makefile's TAGS is not %q, the tags the tests build with", buildTags)
	}
	out, err := exec.Command("go", "list", "-tags", buildTags, "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/go-git/go-git/v5" {
			t.Errorf("go-git's root package (its transports, SSH and HTTP) is linked into codemachine")
		}
		for _, bad := range unusedAtStartup {
			if pkg == bad || strings.HasPrefix(pkg, bad+"/") {
				t.Errorf("%s is linked into codemachine", pkg)
			}
		}
	}
}
