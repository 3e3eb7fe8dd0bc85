"""The search service: a FastAPI app over a :class:`~cirlab.search.SearchEngine` and its web page.

``create_app(engine, data_root)`` builds the application, which answers concurrent searches in
micro-batches (``BatchSettings``); ``serve(index, checkpoint, data_root=...)`` loads everything once and
runs it with uvicorn (``cirlab serve``); ``BackgroundServer`` runs an app in a thread on a loopback port
(tests, benchmarks).
"""

from cirlab.serve.app import create_app
from cirlab.serve.batching import BatchSettings
from cirlab.serve.server import BackgroundServer, serve
from cirlab.serve.validation import RequestError, ServeLimits

__all__ = ["BackgroundServer", "BatchSettings", "RequestError", "ServeLimits", "create_app", "serve"]
