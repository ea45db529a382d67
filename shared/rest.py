"""REST calls with requests, run in a thread so the event loop never blocks on them.

Every outcome is defined: a 2xx body is returned; 429/418 waits for Retry-After (or
the backoff) and tries again; 5xx, timeouts and connection errors back off and try
again; any other status is the exchange's answer and is reported as an ExchangeError.
After `attempts` tries the call gives up with RestUnavailable; the caller decides
whether to try again later (the fallback loop does, every poll interval).
"""

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from shared.log import Throttled, cause
from shared.record import ExchangeError
from shared.stats import Stats

USER_AGENT = "coinstream/0.1"


class RestUnavailable(Exception):
    """The exchange's REST API did not answer usefully after every attempt."""


class RestClient:
    def __init__(
        self,
        headers: dict[str, str],
        timeout_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        stats: Stats,
        log: logging.Logger,
    ) -> None:
        self._session = requests.Session()
        self._session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json", **headers})
        self._timeout_s = timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._stats = stats
        self._throttled = Throttled(log)
        # One thread: calls to one exchange are sequential anyway (rate limits).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rest")

    async def get(self, url: str, attempts: int = 4) -> tuple[bytes, int]:
        """The body of a successful GET and the wall-clock ns when it arrived."""
        loop = asyncio.get_running_loop()
        delay = self._backoff_initial_s
        problem = ""
        for _ in range(attempts):
            self._stats.rest_polls += 1
            try:
                response = await loop.run_in_executor(self._executor, self._get, url)
            except requests.RequestException as error:
                problem = cause(error)
                wait = delay
            else:
                received_ns = time.time_ns()
                status = response.status_code
                if 200 <= status < 300:
                    return response.content, received_ns
                problem = f"HTTP {status}: {response.text[:200]}"
                if status in (418, 429):
                    self._stats.rate_limit_waits += 1
                    wait = _retry_after(response, delay)
                elif status < 500:
                    self._stats.rest_errors += 1
                    raise ExchangeError(f"GET {url}: {problem}")
                else:
                    wait = delay
            self._stats.rest_errors += 1
            self._throttled.warning("rest errors", "GET %s: %s; retrying in %.1f s", url, problem, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self._backoff_max_s)
        raise RestUnavailable(f"GET {url}: gave up after {attempts} attempts; last: {problem}")

    def _get(self, url: str) -> requests.Response:
        return self._session.get(url, timeout=self._timeout_s)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._session.close()


def _retry_after(response: requests.Response, fallback_s: float) -> float:
    """Seconds the exchange asked us to wait; the backoff (with jitter) if it did not say."""
    header = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(header))
    except ValueError:
        return fallback_s * random.uniform(1.0, 1.5)
