package agents

import "github.com/codemachine/codemachine/sandbox"

// Sandbox is the policy a Request runs under (package sandbox), named
// here so that the orchestrator builds one without importing the launcher.
type Sandbox = sandbox.Policy

// SandboxStatus is the protection the system allows a sandboxed run.
type SandboxStatus = sandbox.Status

// ProbeSandbox finds out, once per process, what protection this system
// allows (sandbox.Probe).
func ProbeSandbox() SandboxStatus { return sandbox.Probe() }

// ProbeSandboxRemembered is ProbeSandbox for reports, the answer of its
// trial launch kept in file while nothing it depends on changes
// (sandbox.ProbeRemembered).
func ProbeSandboxRemembered(file string) SandboxStatus { return sandbox.ProbeRemembered(file) }

// SocketDirs are the directories the sandbox hides from a step for the
// sockets they hold (sandbox.SocketDirs).
func SocketDirs(environ []string) []string { return sandbox.SocketDirs(environ) }

// UserSockets reads where the user's sockets are from the user's
// environment, for a Sandbox's HideDirs and Sockets (sandbox.UserSockets).
func UserSockets(environ []string) (dirs, sockets []string) { return sandbox.UserSockets(environ) }
