#!/usr/bin/env bash
# make demo [TEMPLATE=NAME]: a built-in workflow, replayed offline from its
# recordings, landing one commit per step in a scratch repository.
# TEMPLATE is spec-to-code (the default), migrate or feature.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cm="$root/bin/codemachine"
template=${TEMPLATE:-spec-to-code}
demo=${DEMO_DIR:-${TMPDIR:-/tmp}/codemachine-demo}
case $template in
spec-to-code | migrate | feature) ;;
*)
	echo "make demo: no template '$template'; TEMPLATE is one of: spec-to-code, migrate, feature" >&2
	exit 2
	;;
esac

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

# The git configuration of the demo is beside the scratch repository, not
# in it: init writes a template's sample code base only into a repository
# without files of its own.
rm -rf "$demo" "$demo.gitconfig"
mkdir -p "$demo"
cd "$demo"
export GIT_CONFIG_GLOBAL="$demo.gitconfig" GIT_CONFIG_NOSYSTEM=1
git config --global user.name "Demo User"
git config --global user.email "demo@example.com"
git config --global init.defaultBranch main
git config --global advice.detachedHead false

demo_spec_to_code() {
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
}

# demo_migrate: a legacy billing run in awk, translated to Go one file at a
# time, each translation checked against the legacy program.
demo_migrate() {
	say "A scratch repository with the migrate workflow and a legacy code base (awk and sh)"
	show git init -q .
	show "$cm" init --template migrate
	show cat legacy/billing.sh
	show git add -A
	show git commit -qm "legacy billing, and the migrate workflow"
	show "$cm" status

	say "Run it: one task per legacy file, each checked (go vet, go test, same output as the legacy program on the samples)"
	show "$cm" run --engine replay

	say "One commit per step and per legacy file"
	show git --no-pager log --stat --format='%C(yellow)%h%Creset %s' -n 10

	say "The Go program prints what the legacy one prints"
	show sh -c 'sh legacy/billing.sh <legacy/testdata/billing/week.txt'
	show sh -c 'go run ./cmd/billing <legacy/testdata/billing/week.txt'
	show sh .codemachine/check.sh legacy/billing.sh

	say "Edit one legacy file and commit: exactly its task is due again (and integrate, which needs every translation)"
	echo '# Rate reviewed for 2026: still 20%.' >>legacy/tax.awk
	show git --no-pager diff
	show git commit -qam "legacy: note the review in tax.awk"
	show "$cm" status
	printf '\n`codemachine run` with an agent would translate legacy/tax.awk again, and no other legacy file.\n'
}

# demo_feature: a feature added to a small Go program as a series of
# reviewed commits on a feature branch.
demo_feature() {
	say "A scratch repository with a small Go program (conv) and the feature workflow"
	show git init -q .
	show "$cm" init --template feature
	show git add -A
	show git commit -qm "conv, and the feature workflow"
	show cat .codemachine/feature.md

	say "The feature gets a branch of its own: its commits are the pull request"
	show git switch -qc feature/kelvin

	say "Run it: the plan waits for you (exit 3)"
	show "$cm" run --engine replay || true
	show git --no-pager show codemachine/review/plan:.codemachine/plan.md
	show "$cm" approve plan

	say "Run again: one commit per task, each checked and reviewed by an agent before it lands"
	show "$cm" run --engine replay

	say "The branch: small reviewed commits on top of main"
	show git --no-pager log --format='%C(yellow)%h%Creset %s%n  %(trailers:key=Codemachine-Review,valueonly,separator=%x2C )' main..feature/kelvin
	show go test ./...
	show go run . -to K 100 C
	show cat .codemachine/pull-request.md
}

case $template in
spec-to-code) demo_spec_to_code ;;
migrate) demo_migrate ;;
feature) demo_feature ;;
esac

printf '\nThe scratch repository is %s — look around (git log, codemachine status).\n' "$demo"
