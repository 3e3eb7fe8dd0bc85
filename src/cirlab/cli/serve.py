"""Serve the search API and web page for a gallery index.

`cirlab serve --index INDEX --checkpoint RUN --data ROOT` loads the index, its feature cache, the
run's best combiner and the encoder once, then serves with uvicorn: the page at `/`, the JSON API
under `/api` (`/api/search`, `/api/gallery`, `/api/info`), images at `/images/{id}`, `/health`, and
the OpenAPI documentation at `/docs`. It listens on 127.0.0.1 unless `--host` says otherwise, answers
only loopback `Host` names there (plus `--allowed-host`), and with `--token` (or `CIRLAB_SERVE_TOKEN`)
the API needs `Authorization: Bearer TOKEN`. Searches that arrive within `--batch-window-ms` of each
other are answered as one batch of at most `--max-batch` queries (`--max-batch 1`: one at a time).
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

from cirlab.cli.options import add_device, add_engine_arguments, add_features


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``cirlab serve``."""
    add_engine_arguments(parser)
    parser.add_argument("--data", type=Path, default=None,
                        help="data set root whose images/ are served (default: the one the features came from)")
    add_features(parser, default_text="the one the index was built from")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="also answer requests whose Host header names NAME (repeatable; '*' for any); "
                             "on a loopback --host only loopback names are answered otherwise")
    parser.add_argument("--token", default=None,
                        help="require 'Authorization: Bearer TOKEN' on the API (default: $CIRLAB_SERVE_TOKEN; "
                             "the page takes it as /#token=TOKEN)")
    add_device(parser)
    parser.add_argument("--faiss-threads", type=int, default=1,
                        help="OpenMP threads per faiss search (default 1: requests already run in parallel; "
                             "0 = faiss's default, one per core)")
    parser.add_argument("--batch-window-ms", type=float, default=2.0, metavar="MS",
                        help="longest a search waits for others to share its batch (default 2; a full batch is "
                             "answered at once)")
    parser.add_argument("--max-batch", type=int, default=32,
                        help="most searches answered as one batch (default 32; 1 = no batching, each search "
                             "answered on its own)")
    parser.add_argument("--max-k", type=int, default=200, help="most results per search (default 200)")
    parser.add_argument("--max-text-chars", type=int, default=500, help="longest modification text (default 500)")
    parser.add_argument("--max-upload-mb", type=float, default=8.0, help="largest uploaded image file (default 8 MB)")
    parser.add_argument("--max-upload-megapixels", type=float, default=16.0,
                        help="largest uploaded image, in millions of pixels (default 16)")
    parser.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="answer 408 and close when a request body sends nothing for this long (default 30)")


def run(args: argparse.Namespace) -> int:
    """Run ``cirlab serve``."""
    from cirlab.errors import ConfigError
    from cirlab.serve.access import TOKEN_ENV
    from cirlab.serve.batching import BatchSettings
    from cirlab.serve.server import serve
    from cirlab.serve.validation import ServeLimits

    if args.max_k < 1 or args.max_text_chars < 1 or args.max_upload_mb <= 0 or args.max_upload_megapixels <= 0:
        raise ConfigError("--max-k, --max-text-chars, --max-upload-mb and --max-upload-megapixels must be positive")
    if not 0 < args.body_timeout < math.inf:
        raise ConfigError(f"--body-timeout must be a positive number of seconds, got {args.body_timeout}")
    limits = ServeLimits(max_k=args.max_k, default_k=min(10, args.max_k), max_text_chars=args.max_text_chars,
                         max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                         max_upload_pixels=int(args.max_upload_megapixels * 1_000_000),
                         body_timeout=args.body_timeout)
    batching = BatchSettings(window_ms=args.batch_window_ms, max_batch=args.max_batch)
    token = args.token if args.token is not None else os.environ.get(TOKEN_ENV) or None
    serve(args.index, args.checkpoint, combiner_name=args.combiner, data_root=args.data, features=args.features,
          host=args.host, port=args.port, device=args.device, limits=limits, batching=batching,
          faiss_threads=args.faiss_threads or None, allowed_hosts=args.allowed_host, token=token)
    return 0
