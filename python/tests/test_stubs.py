"""The type stubs match the extension (mypy's stubtest), and docstrings are on every public name."""

import inspect
import subprocess
import sys

import msgraph_notify
import msgraph_notify.testing


def test_stubs_match_the_extension():
    out = subprocess.run([sys.executable, "-m", "mypy.stubtest", "msgraph_notify._native",
                          "--ignore-disjoint-bases"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_public_name_has_a_docstring():
    for module in (msgraph_notify, msgraph_notify.testing):
        assert module.__doc__
        for name in module.__all__:
            if name == "__version__":
                continue
            obj = getattr(module, name)
            assert inspect.getdoc(obj), name
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for attr, value in vars(obj).items():
                    if not attr.startswith("_"):
                        assert inspect.getdoc(value), f"{name}.{attr}"
