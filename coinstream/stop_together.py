"""supervisord event listener: when supervisord shuts down, stop every worker at once.

supervisord stops its process groups one after another, each after the last has exited,
and each program of supervisord.conf is a group of its own: ten workers that each wait
out a flush took ten times as long (209 s with Kafka down). Once shutting down it takes
no more requests on its control socket (SHUTDOWN_STATE), so this listener follows the
processes' states (PROCESS_STATE events) and, on SUPERVISOR_STATE_CHANGE_STOPPING, sends
each running one SIGTERM itself, as `supervisorctl stop` would: the whole shutdown then
takes as long as the slowest worker's stop. Run by supervisord.conf
([eventlistener:stop_together]); speaks the listener protocol on stdin/stdout.
"""

import os
import signal
import sys

from supervisor import childutils

STOPPING = "SUPERVISOR_STATE_CHANGE_STOPPING"
RUNNING = "PROCESS_STATE_RUNNING"


def is_sibling(pid: int) -> bool:
    """Whether pid is still a child of our supervisord (not a pid reused since)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[1]) == os.getppid()


def main() -> None:
    own_group = os.environ.get("SUPERVISOR_GROUP_NAME", "")
    running: dict[str, int] = {}  # "group:name" -> pid
    while True:
        headers, payload = childutils.listener.wait(sys.stdin, sys.stdout)
        event = headers["eventname"]
        if event.startswith("PROCESS_STATE_"):
            fields, _ = childutils.eventdata(payload + "\n")
            name = f"{fields['groupname']}:{fields['processname']}"
            if event == RUNNING and fields["groupname"] != own_group:
                running[name] = int(fields["pid"])
            else:
                running.pop(name, None)
        elif event == STOPPING:
            for pid in running.values():
                if is_sibling(pid):
                    os.kill(pid, signal.SIGTERM)  # the programs' stopsignal
            running.clear()
        childutils.listener.ok(sys.stdout)


if __name__ == "__main__":
    main()
