"""Every registered LexicalIndex backend runs the conformance suite; the registry rejects bad names."""

from __future__ import annotations

from pathlib import Path

import pytest

from memsvc.exceptions import ConfigError
from memsvc.stores import LEXICAL_INDEXES, LexicalIndex
from tests.conformance.lexical_index import LexicalIndexSuite, PersistentLexicalIndexSuite


class TestInMemoryLexicalIndex(LexicalIndexSuite):
    def make_index(self, path: Path) -> LexicalIndex:
        return LEXICAL_INDEXES.create("memory")


class TestQdrantEdgeLexicalIndex(PersistentLexicalIndexSuite):
    def make_index(self, path: Path) -> LexicalIndex:
        return LEXICAL_INDEXES.create("qdrant-edge", path=str(path))


def test_every_backend_is_tested() -> None:
    assert set(LEXICAL_INDEXES.names()) == {"memory", "qdrant-edge"}


def test_unknown_backend_and_bad_dotted_path() -> None:
    with pytest.raises(ConfigError):
        LEXICAL_INDEXES.create("no-such-index")
    with pytest.raises(ConfigError):
        LEXICAL_INDEXES.create("memsvc.stores.base.Scope")


def test_dotted_path_to_a_backend_class() -> None:
    ix = LEXICAL_INDEXES.create("memsvc.stores.lexical_memory.InMemoryLexicalIndex")
    assert isinstance(ix, LexicalIndex)
