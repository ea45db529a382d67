"""supervisord event listener: when supervisord shuts down, stop every worker at once.

supervisord stops its process groups one after another, each after the last has exited,
and each program of supervisord.conf is a group of its own: ten workers that each wait
out a flush took ten times as long (209 s with Kafka down). Once shutting down it takes
no more requests on its control socket (SHUTDOWN_STATE), so on
SUPERVISOR_STATE_CHANGE_STOPPING this listener sends every other child of its
supervisord SIGTERM itself, as `supervisorctl stop` would: the whole shutdown then takes
as long as the slowest worker's stop. supervisord logs those it did not stop itself as
`exited: <name> (exit status 0; not expected)`. Run by supervisord.conf
([eventlistener:stop_together]); speaks the listener protocol on stdin/stdout.
"""

import os
import signal
import sys
from pathlib import Path

from supervisor import childutils

STOPPING = "SUPERVISOR_STATE_CHANGE_STOPPING"


def children_of(parent: int) -> list[int]:
    """The pids of `parent`'s children, from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == parent:
            children.append(int(stat.parent.name))
    return children


def main() -> None:
    while True:
        headers, _ = childutils.listener.wait(sys.stdin, sys.stdout)
        if headers["eventname"] == STOPPING:
            for pid in children_of(os.getppid()):
                if pid != os.getpid():
                    try:
                        os.kill(pid, signal.SIGTERM)  # the programs' stopsignal
                    except ProcessLookupError:
                        pass  # exited meanwhile
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
