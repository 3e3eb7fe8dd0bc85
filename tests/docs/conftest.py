"""The doc tests' workspace: built once for the documented commands, its servers stopped at the end.

It is removed afterwards unless a test failed (then it is left for inspection, as pytest keeps the folders of
failed tests), so that the suite's disk use does not grow with the documented runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.docs.catalogue import runnable_by_page
from tests.docs.harness import Workspace


@pytest.fixture(scope="module")
def workspace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The scratch checkout with the session's tiny fixtures (see :mod:`tests.docs.harness`)."""
    space = Workspace(tmp_path_factory.mktemp("docs"), runnable_by_page())
    try:
        space.build()
        yield space
    finally:
        space.close()
        if not request.session.testsfailed:
            shutil.rmtree(space.root, ignore_errors=True)
