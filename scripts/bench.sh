#!/usr/bin/env bash
# make bench: the performance targets of DESIGN 16 with Go's benchmark
# harness. Every figure is measured against a baseline in the same run (git
# itself, or the agent CLI run directly), because these machines are noisy;
# see docs/benchmarks.md for the targets and the last recorded results.
#
# The 100k-file repositories take minutes to generate; set
# CODEMACHINE_BENCH_LARGE=0 to skip them.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
export CODEMACHINE_BENCH_LARGE=${CODEMACHINE_BENCH_LARGE:-1}
[ "$CODEMACHINE_BENCH_LARGE" = 0 ] && unset CODEMACHINE_BENCH_LARGE

# The build tags of make build.
run() { echo "== $*"; "$GO" test -tags urfave_cli_no_docs -run '^$' -timeout 90m "$@"; }

# Step overhead vs git add -A && git commit (1k and 100k files).
run ./orchestrator -bench 'StepOverhead' -benchtime 10x
# The sandbox: a step with it on vs the same step with sandbox: off (<= 1.1x).
run ./orchestrator -bench 'SandboxOverhead' -benchtime 10x
# The worktree pool and landing alone, same baseline.
run ./gitstate -bench 'StageCommit' -benchtime 10x
# Reusing a pooled worktree (its scratch .git brought up to date) vs git status in
# it.
run ./gitstate -bench 'WorktreeReuse' -benchtime 20x
# A generated plan of 50 to 500 tasks, no-op agent, parallel 4: the
# overhead per task stays flat; no task lost or run twice.
run ./orchestrator -bench 'PlanTasks' -benchtime 1x
# A glob fan-out over 500 and 5,000 files: deciding what is due after a
# one-file edit (< 50 ms, per-file cost flat) vs git ls-tree of the files.
run ./orchestrator -bench 'FanoutDue' -benchtime 20x
# codemachine status on a 100-step workflow, 10k files, vs git log -1
# (<= 3x).
run ./cmd/codemachine -bench 'Status100' -benchtime 20x
# Cost: the example workflow replayed from its recordings, a full run and
# the run after a one-task steer, in tokens and dollars, next to what
# running every unit again costs.
run ./cmd/codemachine -bench 'ExampleCost' -benchtime 1x
# Start-up: codemachine version vs git rev-parse HEAD (<= 2x).
run ./cmd/codemachine -bench 'Startup' -benchtime 50x
# watch: commit -> step started (quiet window + 50 ms); an idle watcher's
# CPU, memory and set-up time on 1k and 100k files.
run ./cmd/codemachine -bench 'WatchLatency' -benchtime 20x
run ./cmd/codemachine -bench 'WatchIdle' -benchtime 1x
# codemachine around a real agent CLI (Claude Code against the fake model
# server) vs the same CLI run directly (<= 1.2x); needs the pinned CLIs
# (make clis).
run ./cmd/codemachine -bench 'ClaudeOverhead' -benchtime 20x
# Workers (issue 14): 8 no-op tasks of 2 s simulated agent time on 1, 2
# and 4 workers sharing a remote served over smart HTTP: wall time,
# speed-up, git round trips per task, claim latency.
run ./cmd/codemachine -bench 'Workers' -benchtime 1x
