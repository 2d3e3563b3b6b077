#!/bin/sh
# run.sh ARGS...: /usr/bin/python3 ARGS, or exit 77 (skip) saying what is missing.
py=/usr/bin/python3
if [ ! -x "$py" ]; then echo "SKIP: $py not found"; exit 77; fi
for m in pytest numpy torch; do
  if ! "$py" -c "import $m" 2>/dev/null; then
    echo "SKIP: $py cannot import $m (Debian: apt-get install python3-$m)"; exit 77
  fi
done
cd "${TMPDIR:-/tmp}" || exit 1
exec "$py" "$@"
