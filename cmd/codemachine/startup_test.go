package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/codemachine/codemachine/internal/testenv"
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
	"github.com/go-git/go-git/v5/plumbing/transport", // gitstate opens go-git's storage only; git itself fetches and pushes
	"golang.org/x/crypto/ssh",
	"github.com/skeema/knownhosts",
	"github.com/santhosh-tekuri/jsonschema", // compiles every draft's meta-schema in init; output_schema uses google/jsonschema-go
	// go-git's object decoders link OpenPGP (signature checks) and its
	// curves; gitstate decodes commits and trees itself (objparse.go).
	"github.com/go-git/go-git/v5/plumbing/object",
	"github.com/ProtonMail/go-crypto",
	"github.com/cloudflare/circl",
	// OTLP's collector messages come with their gRPC service, which links
	// gRPC, HTTP/2 and protojson; telemetry posts OTLP/HTTP itself.
	"go.opentelemetry.io/proto/otlp/collector",
	"google.golang.org/grpc",
	"github.com/grpc-ecosystem/grpc-gateway",
	// OTLP's messages register their descriptors with the protobuf
	// runtime at start-up; telemetry writes the request itself.
	"go.opentelemetry.io/proto/otlp",
	"google.golang.org/protobuf",
	"go.opentelemetry.io/otel/exporters/otlp",
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

// BenchmarkStartup measures `codemachine version` as a whole process, which
// is almost all start-up (the runtime, and the initialisation of every
// linked package), against `git rev-parse HEAD` in the same repository,
// alternating, in the same run.
//
// Metrics: version-ms/op, git-ms/op, x-git (target <= 2).
func BenchmarkStartup(b *testing.B) {
	bin := buildBenchBinary(b)
	home := b.TempDir()
	env := testenv.GitEnv(home)
	dir := testenv.GenRepo(b, 10, nil)
	run := func(name string, args ...string) time.Duration {
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = dir, env
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return time.Since(start)
	}
	run(bin, "version")
	run("git", "rev-parse", "HEAD")
	var cm, git time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cm += run(bin, "version")
		git += run("git", "rev-parse", "HEAD")
	}
	b.StopTimer()
	cmMS := float64(cm.Microseconds()) / 1000 / float64(b.N)
	gitMS := float64(git.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(cmMS, "version-ms/op")
	b.ReportMetric(gitMS, "git-ms/op")
	b.ReportMetric(cmMS/gitMS, "x-git")
}
