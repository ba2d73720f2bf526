"""A missing optional library is named with the sparring extra that installs it."""

import importlib
import sys

import pytest

from sparring.cli import main
from sparring.integrations import require


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "openenv", None)  # import openenv -> ImportError, as when not installed
    with pytest.raises(ImportError, match=r'pip install "sparring\[openenv\]"'):
        require("openenv.core.env_server", "openenv")


def test_serve_without_openenv_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "openenv", None)
    monkeypatch.setitem(sys.modules, "openenv.core", None)
    monkeypatch.setitem(sys.modules, "openenv.core.env_server", None)
    assert main(["serve", "Countdown-v0"]) == 2
    assert 'pip install "sparring[openenv]"' in capsys.readouterr().err


def test_verifiers_adapter_without_verifiers_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "verifiers", None)
    monkeypatch.setitem(sys.modules, "verifiers.v1", None)
    monkeypatch.delitem(sys.modules, "sparring.integrations.verifiers", raising=False)
    with pytest.raises(ImportError, match=r'pip install "sparring\[verifiers\]"'):
        importlib.import_module("sparring.integrations.verifiers")
