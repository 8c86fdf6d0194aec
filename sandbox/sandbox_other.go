//go:build !linux

package sandbox

import (
	"os"
	"runtime"
	"syscall"
)

const supported = false

func launch([]string) int {
	_, _ = os.Stderr.WriteString("codemachine sandbox: " + ErrUnsupported.Error() + "\n")
	return 125
}

func launchExec(args []string) int { return launch(args) }

// Probe reports that nothing but process groups contain a step here.
func Probe() Status {
	return Status{OS: runtime.GOOS, ABIErr: "no Landlock on " + runtime.GOOS, NamespaceErr: "not Linux", PrivilegesErr: "not Linux"}
}

// ProbeRemembered is Probe: nothing is tried here.
func ProbeRemembered(string) Status { return Probe() }

// SetAttr does nothing where there is no launcher.
func (l *Launch) SetAttr(*syscall.SysProcAttr) {}

func mountNamespace() string { return "" }

// hideFromSteps does nothing where there is no launcher.
func hideFromSteps() error { return nil }

// closeInheritedOnExec does nothing here: steps are not sandboxed.
func closeInheritedOnExec() {}
