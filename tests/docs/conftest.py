"""The doc tests' workspace: built once per session, its servers stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.docs.catalogue import runnable_by_page
from tests.docs.harness import Workspace


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The scratch checkout with the session's tiny fixtures (see :mod:`tests.docs.harness`)."""
    space = Workspace(tmp_path_factory.mktemp("docs"), runnable_by_page())
    try:
        space.build()
        yield space
    finally:
        space.close()
