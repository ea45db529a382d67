"""The bundled single-node Kafka broker (kafka/kafka-local.sh) on 127.0.0.1:PORT, its
controller on PORT+1, as `coinstream run` and `coinstream demo` start it. The script's
own messages go to stderr, where the user sees them."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = ROOT / "kafka" / "kafka-local.sh"


class BrokerError(Exception):
    """The broker did not start, or another one runs from the same data directory."""


class BundledBroker:
    def __init__(self, port: int, run_dir: Path | None = None) -> None:
        """run_dir: its config, data and PID file (default: the script's, in ~/.cache/coinstream)."""
        self.address = f"127.0.0.1:{port}"
        self.env = dict(os.environ, KAFKA_PORT=str(port), KAFKA_CONTROLLER_PORT=str(port + 1))
        if run_dir is not None:
            self.env["KAFKA_RUN_DIR"] = str(run_dir)

    def running_address(self) -> str | None:
        """The address of the broker that runs from this data directory, if one does."""
        done = subprocess.run([str(KAFKA_LOCAL), "status"], env=self.env, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    def start(self, fresh: bool = False) -> None:
        """Start it and wait until it takes connections; fresh: with empty data."""
        # A session of its own, and waited for even after a Ctrl-C: the script must not
        # die between starting the JVM and writing the PID file that stop() reads.
        script = subprocess.Popen([str(KAFKA_LOCAL), "start", *(["--fresh"] if fresh else [])], env=self.env,
                                  stdout=subprocess.DEVNULL, start_new_session=True)
        try:
            code = script.wait()
        except KeyboardInterrupt:
            script.wait()
            raise
        if code != 0:
            raise BrokerError(f"the bundled Kafka broker did not start on {self.address} (see above)")

    def stop(self) -> None:
        subprocess.run([str(KAFKA_LOCAL), "stop"], env=self.env, stdout=subprocess.DEVNULL)
