"""cirlab's errors survive pickling with their type and message, as a worker process raises them to its parent."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import pytest

import cirlab
from cirlab.errors import CirlabError, DataError, MissingImagesError
from cirlab.search.errors import QueryError, UnknownItemError


def all_error_classes() -> list[type[CirlabError]]:
    """Every CirlabError subclass defined in cirlab (its modules imported first)."""
    for module in pkgutil.walk_packages(cirlab.__path__, "cirlab."):
        if not module.name.endswith("__main__"):
            try:
                importlib.import_module(module.name)
            except ImportError:  # an optional extra that is not installed
                continue
    found, todo = [], [CirlabError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("error", [DataError("data/x.json", "not JSON"), MissingImagesError("images", "3 missing"),
                                   QueryError("k", "must be at least 1"), UnknownItemError("reference_id", "unknown")])
def test_errors_with_fields_keep_them(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_every_error_class_survives_pickling():
    classes = all_error_classes()
    assert DataError in classes and QueryError in classes
    for cls in classes:
        try:
            error = cls("a.json: broken")
        except TypeError:  # built from fields; the classes above check those
            continue
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is cls and str(copy) == str(error), cls
