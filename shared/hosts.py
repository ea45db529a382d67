"""An exchange's host, and the alternate host that serves the same paths.

Exchanges move: Korbit's API is being renamed Digital X, on new hosts that serve the
same paths while the old ones still answer. With `alternate_ws_url` and
`alternate_rest_url` configured, a worker moves to the other host after repeated
failures on the one in use, and back again the same way, without a restart.
"""

import logging

from shared.log import Throttled
from shared.stats import Stats


class Hosts:
    """The base URL in use, out of a primary and an optional alternate.

    The venue builds every URL on the primary base; `rebased` moves a URL to the base in
    use. `switch_after` failures in a row there make the other base the one in use.
    """

    def __init__(self, what: str, primary: str, alternate: str | None, switch_after: int,
                 stats: Stats, log: logging.Logger) -> None:
        self._what = what
        self._primary = primary.rstrip("/")
        self._bases = [self._primary] + ([alternate.rstrip("/")] if alternate else [])
        self._in_use = 0
        self._failures = 0
        self._switch_after = switch_after
        self._stats = stats
        self._throttled = Throttled(log)  # both hosts down: it goes back and forth

    @property
    def base(self) -> str:
        return self._bases[self._in_use]

    def rebased(self, url: str) -> str:
        """`url`, built on the primary base, on the base in use."""
        if self._in_use and url.startswith(self._primary):
            return self.base + url[len(self._primary):]
        return url

    def failed(self) -> bool:
        """Count one failure on the base in use; True when that made the other one the base in use."""
        self._failures += 1
        if len(self._bases) == 1 or self._failures < self._switch_after:
            return False
        failing = self.base
        self._in_use = 1 - self._in_use
        self._failures = 0
        self._stats.host_switches += 1
        self._throttled.warning(f"{self._what} host switches", "%s: %d failure(s) in a row on %s; switching to %s",
                                self._what, self._switch_after, failing, self.base)
        return True

    def succeeded(self) -> None:
        self._failures = 0
