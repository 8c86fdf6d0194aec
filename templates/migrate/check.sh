#!/bin/sh
# check.sh LEGACY_FILE: the check of the migrate workflow. The Go
# translation of LEGACY_FILE (legacy/NAME.awk or legacy/NAME.sh: its command
# is ./cmd/NAME) must pass go vet and the tests, build, and print exactly
# what LEGACY_FILE prints for every sample input in legacy/testdata/NAME/.
set -eu
src=${1:?usage: check.sh LEGACY_FILE}
name=$(basename "$src")
name=${name%.*}
go vet ./...
go test ./...
bin=${TMPDIR:-/tmp}/check-$name
go build -o "$bin" "./cmd/$name"
n=0
for input in legacy/testdata/"$name"/*; do
	[ -f "$input" ] || continue
	case $src in
	*.awk) awk -f "$src" <"$input" >"$bin.want" ;;
	*) sh "$src" <"$input" >"$bin.want" ;;
	esac
	"$bin" <"$input" >"$bin.got"
	if ! cmp -s "$bin.want" "$bin.got"; then
		echo "$src and ./cmd/$name print different things for $input (- legacy, + Go):"
		diff -u "$bin.want" "$bin.got" || true
		exit 1
	fi
	n=$((n + 1))
done
if [ "$n" = 0 ]; then
	echo "no sample input in legacy/testdata/$name/: add some; the translation is compared with $src on each"
	exit 1
fi
echo "ok: ./cmd/$name prints what $src prints for the $n sample input(s) in legacy/testdata/$name/"
