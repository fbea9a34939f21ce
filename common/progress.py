"""Progress that suits where it goes: tqdm's bars where a person watches (a terminal, a notebook),
and elsewhere (a log file, CI, nohup) a plain line now and then, instead of a bar redrawn into
the file at every update (46 KB of log for ten small epochs)."""

import sys
import time

from tqdm.auto import tqdm  # widgets in notebooks, text bars in terminals

# Seconds between two progress lines when there is no bar: a long epoch still shows it is alive.
LINE_INTERVAL = 60


def bars_wanted():
    return "ipykernel" in sys.modules or sys.stderr.isatty()


def plural(unit):
    return unit + ("es" if unit.endswith(("ch", "s")) else "s")


def progress(iterable, description, total=None, unit="batch", leave=False):
    """Iterate with a bar, or with a line every LINE_INTERVAL seconds when nobody sees a bar."""
    if bars_wanted():
        return tqdm(iterable, desc=description, total=total, unit=unit, leave=leave, dynamic_ncols=True)
    return _with_lines(iterable, description, len(iterable) if total is None and hasattr(iterable, "__len__")
                       else total, unit)


def _with_lines(iterable, description, total, unit):
    started = last_line = time.monotonic()
    for count, item in enumerate(iterable, 1):
        yield item
        now = time.monotonic()
        if now - last_line >= LINE_INTERVAL:
            last_line = now
            print(f"{description}: {count}{f'/{total}' if total else ''} {plural(unit)}, {now - started:.0f} s",
                  flush=True)


class Counter:
    """A progress count updated by hand (inference counts images, not batches): a bar, or lines."""

    def __init__(self, total, description, unit):
        self.bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True) if bars_wanted() else None
        self.total, self.description, self.unit, self.count = total, description, unit, 0
        self.started = self.last_line = time.monotonic()

    def update(self, amount):
        self.count += amount
        if self.bar is not None:
            self.bar.update(amount)
            return
        now = time.monotonic()
        if now - self.last_line >= LINE_INTERVAL:
            self.last_line = now
            print(f"{self.description}: {self.count}/{self.total} {plural(self.unit)}, "
                  f"{self.count / max(now - self.started, 1e-9):.1f} {plural(self.unit)}/s", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
