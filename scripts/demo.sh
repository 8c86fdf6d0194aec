#!/usr/bin/env bash
# make demo: the example spec-to-code workflow, replayed offline from its
# recordings, landing one commit per step in a scratch repository.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cm="$root/bin/codemachine"
demo=${DEMO_DIR:-${TMPDIR:-/tmp}/codemachine-demo}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# show prints a command the way it could be pasted (arguments with spaces or
# shell characters in single quotes), then runs it.
show() {
	local line="" a
	for a in "$@"; do
		case $a in
		*[!A-Za-z0-9_./=:@%+,-]* | "") a="'${a//\'/\'\\\'\'}'" ;;
		esac
		line+=" $a"
	done
	printf '\033[2m$%s\033[0m\n' "$line"
	"$@"
}

rm -rf "$demo"
mkdir -p "$demo"
cd "$demo"
export GIT_CONFIG_GLOBAL="$demo/.gitconfig-demo" GIT_CONFIG_NOSYSTEM=1
git config --global user.name "Demo User"
git config --global user.email "demo@example.com"
git config --global init.defaultBranch main
git config --global advice.detachedHead false

say "A scratch repository with the example workflow"
show git init -q .
show "$cm" init
show git add .codemachine
show git commit -qm "spec: todo CLI"

say "Run it: every step and every task lands as its own commit (replayed, no model called)"
show "$cm" run --engine replay

say "The run history, from the commits' trailers"
show "$cm" log

say "git log --stat: one commit per step"
show git --no-pager log --stat --format='%C(yellow)%h%Creset %s%n  author: %an' -n 20

say "The program the agents wrote builds and its tests pass"
show go vet ./...
show go test ./...

say "Steer: uncheck T2 in plan.md and commit"
sed -i 's/^- \[x\] T2:/- [ ] T2:/' .codemachine/plan.md
show git --no-pager diff --stat
show git commit -qam "steer: redo T2"
show "$cm" status

say "Run implement again: only T2 runs"
show "$cm" run --engine replay implement
show git --no-pager log --oneline -n 3

say "Roll the task back: the commit is undone, T2 is unchecked again and held"
show "$cm" rollback implement/T2
show "$cm" status
show git --no-pager log --oneline -n 3

printf '\nThe scratch repository is %s — look around (git log, codemachine status).\n' "$demo"
