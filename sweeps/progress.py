"""A sweep's progress for a person: counts by status, throughput, time left.

On a terminal the line is redrawn in place; elsewhere (a log file, a job's output) it is
printed as a plain line every ``interval_s`` seconds; without a stream (the library's default)
the plain lines go through logging. Failed and diverged trials are named on
lines of their own as they arrive. Pure Python: the launcher feeds it trial rows.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from study.records import STATUS_DIVERGED, STATUS_FAILED

logger = logging.getLogger(__name__)

# Throughput over the last minute: recent enough to follow a change of pace, long enough to
# smooth out the batches the records arrive in.
RATE_WINDOW_S = 60.0
MESSAGE_CHARACTERS = 300  # a failure's message is cut here on its progress line


@dataclass(frozen=True)
class ProgressSettings:
    """Where progress goes (picklable: Tune saves it with the experiment for `resume`)."""

    stream: str | None = None  # "stderr" or "stdout"; None: plain lines through logging
    interval_s: float = 30.0  # seconds between plain lines when the stream is not a terminal
    redraw_s: float = 0.2  # seconds between two redraws of the in-place line on a terminal


def format_rate(trials_per_second: float) -> str:
    """``12.5 trials/s``, or per minute below one a second (where ``0.0 trials/s`` says nothing)."""
    if trials_per_second >= 1.0 or trials_per_second == 0.0:
        return f"{trials_per_second:.1f} trials/s"
    return f"{60 * trials_per_second:.1f} trials/min"


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class SweepProgress:
    """Counts finished trials and writes the progress line; see the module docstring."""

    def __init__(self, n_total: int, n_done_before: int, settings: ProgressSettings,
                 clock: Callable[[], float] = time.monotonic, stream: IO[str] | None = None):
        self.n_total, self.n_done_before, self.settings, self.clock = n_total, n_done_before, settings, clock
        self.stream = stream if stream is not None else _named_stream(settings.stream)
        self.interactive = bool(self.stream is not None and getattr(self.stream, "isatty", lambda: False)())
        self.counts: Counter[str] = Counter()
        self.started = clock()
        self.recent: deque[tuple[float, int]] = deque()  # (time, trials done this run) samples
        self.last_written = float("-inf") if self.interactive else self.started

    @property
    def n_done(self) -> int:
        return self.n_done_before + sum(self.counts.values())

    def trial_finished(self, trial_id: str, status: str, message: str = "", diverged_step=None) -> None:
        self.counts[status] += 1
        if status == STATUS_FAILED:
            self._line(f"trial {trial_id} failed: {str(message)[:MESSAGE_CHARACTERS]}")
        elif status == STATUS_DIVERGED:
            self._line(f"trial {trial_id} diverged at step {diverged_step}")

    def batch_done(self) -> None:
        """Call after each batch of trials: updates the throughput and maybe the display."""
        now = self.clock()
        self.recent.append((now, sum(self.counts.values())))
        while len(self.recent) > 2 and now - self.recent[0][0] > RATE_WINDOW_S:
            self.recent.popleft()
        period = self.settings.redraw_s if self.interactive else self.settings.interval_s
        if now - self.last_written >= period:
            self._draw(now)

    def rate(self) -> float:
        """Trials per second over the last minute (over the whole run until a second has passed)."""
        if len(self.recent) >= 2:
            (first_time, first_count), (last_time, last_count) = self.recent[0], self.recent[-1]
            if last_time - first_time >= 1.0:
                return (last_count - first_count) / (last_time - first_time)
        elapsed = self.clock() - self.started
        return sum(self.counts.values()) / elapsed if elapsed > 0 else 0.0

    def status_line(self) -> str:
        by_status = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items()))
        if self.n_done_before:
            by_status = ", ".join(filter(None, [f"{self.n_done_before} from before", by_status]))
        rate, left = self.rate(), self.n_total - self.n_done
        remaining = format_duration(left / rate) if rate > 0 else "?"
        return (f"{self.n_done}/{self.n_total} trials ({by_status or 'none yet'}) | "
                f"{format_rate(rate)} | {remaining} left | {format_duration(self.clock() - self.started)} elapsed")

    def close(self) -> None:
        """The final state of the line (and a newline after an in-place line)."""
        self._draw(self.clock())
        if self.interactive:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, now: float) -> None:
        self.last_written = now
        if self.stream is None:
            logger.info("%s", self.status_line())
            return
        if self.interactive:
            self.stream.write("\r\033[K" + self.status_line())
        else:
            self.stream.write(self.status_line() + "\n")
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.stream is None:
            logger.warning("%s", text)
            return
        self.stream.write(("\r\033[K" if self.interactive else "") + text + "\n")
        if self.interactive:
            self.stream.write(self.status_line())
        self.stream.flush()


def _named_stream(name: str | None) -> IO[str] | None:
    return {"stderr": sys.stderr, "stdout": sys.stdout, None: None}[name]
