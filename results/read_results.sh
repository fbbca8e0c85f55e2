#!/bin/bash
# //results:read_results: results/read_results.py under Debian's python3
# (which has python3-protobuf), with the generated result_pb2 on its path.
runfiles="${RUNFILES_DIR:-$0.runfiles}/saelab"
PYTHONPATH="$runfiles/harness${PYTHONPATH:+:$PYTHONPATH}" \
  exec /usr/bin/python3 "$runfiles/results/read_results.py" "$@"
