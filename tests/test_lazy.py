import subprocess
import sys

import pytest

from cirlab.lazy import lazy_exports


def test_names_are_imported_on_first_use_and_unknown_names_fail():
    getattr_ = lazy_exports("pkg", {"dumps": "json"})
    import json

    assert getattr_("dumps") is json.dumps
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'loads'"):
        getattr_("loads")


@pytest.mark.parametrize("package", ["cirlab.compare", "cirlab.demo", "cirlab.encoder_training"])
def test_importing_a_lazy_package_does_not_import_torch(package):
    code = f"import sys, {package}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
