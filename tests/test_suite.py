"""The suite itself: pytest imports test files by their base name (no __init__.py), so two files of one name in
different folders stop collection with an import mismatch."""

from collections import Counter
from pathlib import Path


def test_test_file_names_are_unique():
    names = Counter(path.name for path in Path(__file__).parent.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
