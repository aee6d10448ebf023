#!/usr/bin/env bash
# A real two-way sync of two local directories with the shipped demo profile (profiles/demo.prf):
# first run, then changes on both sides and a conflict settled by prefer = newer.
# Everything lives under /tmp/swunison-demo; your ~/.swunison is not touched.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SWUNISON_BIN:-$here/../.build/release/swunison}
demo=/tmp/swunison-demo
rm -rf "$demo"
mkdir -p "$demo/a/docs" "$demo/a/notes" "$demo/b/photos" "$demo/state"
cp "$here/demo.prf" "$demo/state/demo.prf"
export SWUNISON=$demo/state

echo "report draft" > "$demo/a/docs/report.txt"
echo "shopping list" > "$demo/a/notes/todo.txt"
echo "holiday" > "$demo/b/photos/beach.jpg"

echo "### 1. First run: each side gets what only the other had"
"$bin" demo
echo
echo "### 2. A edits report.txt, B deletes todo.txt and both edit plan.txt (B later: B wins)"
echo "report final" > "$demo/a/docs/report.txt"
rm "$demo/b/notes/todo.txt"
echo "plan from A" > "$demo/a/docs/plan.txt"; touch -d '-1 hour' "$demo/a/docs/plan.txt"
echo "plan from B" > "$demo/b/docs/plan.txt"
"$bin" demo
echo
echo "### 3. Nothing changed: nothing to do"
"$bin" demo
echo
echo "Both replicas now hold:"
(cd "$demo/a" && find . -type f | sort | sed 's/^/  a\//')
(cd "$demo/b" && find . -type f | sort | sed 's/^/  b\//')
echo "The version of plan.txt that lost is kept under $demo/backups:"
find "$demo/backups" -type f | sed 's/^/  /'
