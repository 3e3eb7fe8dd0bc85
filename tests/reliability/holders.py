"""A separate process that holds a folder's writer lock until the test releases it or kills it.

The test and the holder talk through pipes only (the holder says ``held`` once it holds the lock and
waits for a line on its stdin), so every step is ordered without sleeping or polling.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import sys
    from cirlab.locking import lock_folder
    lock = lock_folder(sys.argv[1])
    print("held", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
''')


TRY = textwrap.dedent('''
    import sys
    from cirlab.locking import FolderLockedError, lock_folder
    try:
        lock_folder(sys.argv[1]).release()
    except FolderLockedError as exc:
        print(exc)
    else:
        print("free")
''')


def lock_elsewhere(folder: Path) -> str:
    """Try to take ``folder``'s lock in another process: ``free`` when it could, else its one-line refusal."""
    done = subprocess.run([sys.executable, "-c", TRY, str(folder)], capture_output=True, text=True, timeout=120,
                          check=True)
    return done.stdout.strip()


class LockHolder:
    """``with LockHolder(folder) as holder:`` — ``folder`` is locked by ``holder.pid`` inside the block."""

    def __init__(self, folder: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SCRIPT, str(folder)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if line != "held":
            self.process.kill()
            self.process.wait()
            raise RuntimeError(f"the lock holder did not take the lock (said {line!r})")
        self.pid = self.process.pid

    def release(self) -> None:
        """Let the holder release the lock and exit; return once it has."""
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"
        assert self.process.wait() == 0

    def kill(self) -> None:
        """SIGKILL the holder (no clean-up of any kind) and wait until it is gone."""
        self.process.kill()
        assert self.process.wait() == -signal.SIGKILL

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            stream.close()
