"""Full-text search of requests by what they are called and about.

Each waiver keeps `search_text` (Waiver.index_for_search: case-folded reference, customer,
products, requester, justification). PostgreSQL indexes it with pg_trgm (a GIN index of
trigrams, which answers `LIKE '%…%'`); SQLite with an FTS5 table of trigrams kept in step
by triggers. Every word of a search must appear, anywhere, as part of a word or whole.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import Q, QuerySet
from django.db.models.expressions import RawSQL

POSTGRESQL = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS waiver_search_trgm ON waivers_waiver "
    "USING gin (search_text gin_trgm_ops)",
]
POSTGRESQL_UNDO = ["DROP INDEX IF EXISTS waiver_search_trgm"]

# An external-content FTS5 table over waivers_waiver.search_text. A migration that remakes
# waivers_waiver on SQLite drops these triggers: such a migration must run SQLITE again (the
# search tests fail until it does).
SQLITE = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS waiver_search USING fts5("
    "search_text, content='waivers_waiver', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS waiver_search_insert AFTER INSERT ON waivers_waiver BEGIN "
    "INSERT INTO waiver_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS waiver_search_delete AFTER DELETE ON waivers_waiver BEGIN "
    "INSERT INTO waiver_search(waiver_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER IF NOT EXISTS waiver_search_update AFTER UPDATE OF search_text "
    "ON waivers_waiver BEGIN "
    "INSERT INTO waiver_search(waiver_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO waiver_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "INSERT INTO waiver_search(waiver_search) VALUES ('rebuild')",
]
SQLITE_UNDO = [
    "DROP TRIGGER IF EXISTS waiver_search_insert",
    "DROP TRIGGER IF EXISTS waiver_search_delete",
    "DROP TRIGGER IF EXISTS waiver_search_update",
    "DROP TABLE IF EXISTS waiver_search",
]


def install(connection, execute) -> None:
    for statement in {"postgresql": POSTGRESQL, "sqlite": SQLITE}.get(connection.vendor, []):
        execute(statement)


def uninstall(connection, execute) -> None:
    undo = {"postgresql": POSTGRESQL_UNDO, "sqlite": SQLITE_UNDO}
    for statement in undo.get(connection.vendor, []):
        execute(statement)


def words(text: str) -> list[str]:
    """The words of a search, case-folded, each at most 100 characters, at most 10."""
    return [w[:100] for w in text.casefold().split()][:10]


def matching(waivers: QuerySet, text: str) -> QuerySet:
    """The waivers of `waivers` whose search text holds every word of `text`."""
    found = words(text)
    if not found:
        return waivers
    if connections[waivers.db].vendor == "sqlite":
        long = [w for w in found if len(w) >= 3]  # a trigram index needs three characters
        if long:
            query = " ".join('"' + w.replace('"', '""') + '"' for w in long)
            matched = "SELECT rowid FROM waiver_search WHERE waiver_search MATCH %s"
            waivers = waivers.filter(id__in=RawSQL(matched, [query]))
        found = [w for w in found if len(w) < 3]
    condition = Q()
    for word in found:
        condition &= Q(search_text__contains=word)
    return waivers.filter(condition)
