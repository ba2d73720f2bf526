"""A missing optional library is named with the sparring extra that installs it."""

import importlib
import sys

import pytest

from sparring.cli import main
from sparring.integrations import require


def uninstall(monkeypatch, package):
    """Make `import package` (and its submodules) fail as if it were not installed, even if already imported."""
    for name in [package] + [n for n in sys.modules if n.startswith(package + ".")] + \
            [f"{package}.core", f"{package}.core.env_server", f"{package}.v1"]:
        monkeypatch.setitem(sys.modules, name, None)


def test_require_names_the_extra(monkeypatch):
    uninstall(monkeypatch, "openenv")
    with pytest.raises(ImportError, match=r'pip install "sparring\[openenv\]"'):
        require("openenv.core.env_server", "openenv")


def test_serve_without_openenv_says_what_to_install(monkeypatch, capsys):
    uninstall(monkeypatch, "openenv")
    assert main(["serve", "Countdown-v0"]) == 2
    assert 'pip install "sparring[openenv]"' in capsys.readouterr().err


def test_verifiers_adapter_without_verifiers_says_what_to_install(monkeypatch):
    uninstall(monkeypatch, "verifiers")
    monkeypatch.delitem(sys.modules, "sparring.integrations.verifiers", raising=False)
    with pytest.raises(ImportError, match=r'pip install "sparring\[verifiers\]"'):
        importlib.import_module("sparring.integrations.verifiers")
