#!/bin/sh
# Fails when a sanitized process of a test run left a report. The test
# presets asan-all and tsan-core set log_path=<build dir>/sanitizer-report,
# so ASan, LeakSanitizer and TSan write each process's report to
# sanitizer-report.<pid> there: reports from the rnn-server processes the
# Python tests start (whose output they may not show, and whose exit status
# some do not check, as with a leak found at exit) fail the run too.
# UBSan's reports go to stderr whatever log_path says, and abort the
# process (-fno-sanitize-recover, abort_on_error=1).
#
# Usage: tools/sanitizers/check-reports.sh <build dir>
set -eu
found=0
for f in "$1"/sanitizer-report.*; do
  [ -e "$f" ] || continue
  echo "=== $f"
  cat "$f"
  found=1
done
if [ "$found" -ne 0 ]; then
  echo "check-reports: sanitizer reports above (docs/fuzzing.md)" >&2
  exit 1
fi
