"""The protocol of a taskgate command task, in three calls.

Copy this file beside your script (it is not a package to install):

    from taskgate_task import inputs, progress, outputs, fail

    args = inputs()                              # the run's inputs, a dict
    progress(3, 10, "epoch 3")                   # optional, any number of times
    outputs({"loss": 0.25})                      # the run's outputs, once

fail(message) ends the run for good (exit code 3: no retry); any other
exception exits 1, and the task's retry policy decides on another attempt.
Run by hand, without taskgate, the inputs come from stdin and the outputs
go to stdout:

    echo '{"size": 1024}' | python3 bench.py
"""

import json
import os
import sys

# The exit code by which a program says "do not retry"
# (taskexec.ExitPermanent).
PERMANENT = 3

_progress = None


def inputs():
    """Returns the run's inputs: $TASKGATE_INPUTS, else stdin."""
    path = os.environ.get("TASKGATE_INPUTS")
    if path:
        with open(path) as f:
            return json.load(f)
    return json.load(sys.stdin)


def progress(done, total=0, message=""):
    """Reports how far the run has come (total 0: unknown). Does nothing
    where taskgate gave no progress pipe ($TASKGATE_PROGRESS)."""
    global _progress
    path = os.environ.get("TASKGATE_PROGRESS")
    if not path:
        return
    if _progress is None:
        _progress = open(path, "w")
    _progress.write(json.dumps({"done": done, "total": total, "message": message}) + "\n")
    _progress.flush()


def outputs(obj):
    """Writes the run's outputs: $TASKGATE_OUTPUTS, else stdout. The file
    is written whole or not at all, so that a crash leaves no half of it."""
    path = os.environ.get("TASKGATE_OUTPUTS")
    if not path:
        json.dump(obj, sys.stdout)
        sys.stdout.write("\n")
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


def fail(message):
    """Ends the run for good: message on stderr, exit code 3 (no retry)."""
    print(message, file=sys.stderr)
    sys.exit(PERMANENT)
