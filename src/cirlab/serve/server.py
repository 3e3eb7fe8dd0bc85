"""Running the service with uvicorn: in the foreground (``cirlab serve``) or in a background thread.

The background form binds its socket before it returns, on an ephemeral loopback port by default,
so tests, benchmarks and notebooks can start a real server and know its address at once.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cirlab.errors import ConfigError
from cirlab.serve.access import allowed_hosts as hosts_for
from cirlab.serve.access import check_token, exposure_warning
from cirlab.serve.batching import BatchSettings
from cirlab.serve.validation import ServeLimits

log = logging.getLogger("cirlab.serve")


def serve(index: str | Path, checkpoint: str | Path | None = None, *, combiner_name: str | None = None,
          data_root: str | Path | None = None, features: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 8000, device: str = "auto", limits: ServeLimits | None = None,
          batching: BatchSettings | None = None, faiss_threads: int | None = 1, log_level: str = "info",
          allowed_hosts: Sequence[str] = (), token: str | None = None) -> None:
    """Load the engine once (index, feature cache, combiner, encoder), then serve until interrupted.

    The ``Host`` names answered are :func:`cirlab.serve.access.allowed_hosts` of ``host`` and
    ``allowed_hosts``; with ``token`` the API needs it. A ``host`` beyond this machine without a
    token gets a one-line warning on stderr. ``batching`` (default :class:`BatchSettings`) says how
    concurrent searches are batched; ``BatchSettings(max_batch=1)`` answers each on its own.

    ``faiss_threads`` sets faiss's OpenMP threads for this process (``None`` leaves faiss's default,
    one per core). Requests already run in parallel (batches alongside the request threads, or each
    request on its own thread), and an OpenMP team per search oversubscribes the cores: on a busy 2-core
    machine one exact search over 100,000 64-d vectors took 30 ms (p50) with 2 threads against 1 ms with 1.
    """
    import faiss
    import uvicorn

    from cirlab.search.query import SearchEngine
    from cirlab.serve.app import create_app

    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must lie in [0, 65535], got {port}")
    names = hosts_for(host, allowed_hosts)  # bad names and tokens are refused before anything is loaded
    if token is not None:
        check_token(token)
    if faiss_threads is not None:
        if faiss_threads < 1:
            raise ConfigError(f"--faiss-threads must be at least 1, got {faiss_threads}")
        faiss.omp_set_num_threads(faiss_threads)
    engine = SearchEngine.load(index, checkpoint, combiner_name=combiner_name, features=features, device=device)
    engine.warm_up()
    app = create_app(engine, data_root, limits=limits, batching=batching, allowed_hosts=names, token=token)
    warning = exposure_warning(host, token)
    if warning:
        log.warning(warning)
    uvicorn.run(app, host=host, port=port, log_level=log_level)


class BackgroundServer:
    """A uvicorn server for ``app`` in a daemon thread; use as a context manager.

    ``url`` is known as soon as the object exists (the socket is bound in the constructor);
    :meth:`start` returns once the server accepts connections.
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        # IPPROTO_TCP explicitly: asyncio only turns on TCP_NODELAY for sockets that name it, and without
        # it every response waits for the peer's delayed ACK (about 40 ms).
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, access_log=False))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self._socket]},
                                        name="cirlab-serve", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        """Start serving; raise RuntimeError when the server is not up within ``timeout`` seconds."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the server to finish its requests and stop; wait for the thread."""
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._socket.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
