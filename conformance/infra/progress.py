"""Progress lines for long phases (builds, bring-up, pushes), on stderr so stdout stays parseable."""

import sys
import time

_STARTED = time.monotonic()


def progress(message: str) -> None:
    print(f"[ivc {time.monotonic() - _STARTED:6.0f}s] {message}", file=sys.stderr, flush=True)
