"""Sticky A/B assignment: which variant a request's user belongs to, the same on every server.

The operator writes the test's assignment table (`assignment.json` in a ConfigMap every model
server pod mounts; `--assignment-file`): the header or cookie carrying the user's key, a salt,
and the variants in order, each with its weight, the revision its servers run, its model name
and the URL of its Service. A key's bucket is

    bucket = int.from_bytes(sha256(f"{salt}:{key}".encode()).digest()[:8], "big") % 100

and its variant the one whose cumulative weights cover the bucket (variants in table order: the
first takes buckets [0, w1), the next [w1, w1 + w2), ...). It depends on nothing but the table and
the key, so every pod, after any restart, behind any router, puts a user in the same variant, and
an application can compute it too. A request without the key is assigned at random by the
weights and counted apart (`assignment="random"`). A server finds its own variant by the revision
it runs (`--model-version`), so the table can change under running pods without restarting them:
it is re-read when the file changes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

log = logging.getLogger(__name__)

BUCKETS = 100
# How often the file's identity is checked (a stat), at most.
POLL_S = 1.0
# Request headers that carry an assignment from the server that made it to the one serving it.
VARIANT_HEADER = b"modelramp-variant"
ASSIGNMENT_HEADER = b"modelramp-assignment"
Assigned = Literal["keyed", "random", "forwarded", "fallback", "misrouted"]


class TableVariant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    weight: int = Field(ge=0, le=100)
    revision: str = Field(min_length=1)
    model: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")


class AssignmentTable(BaseModel):
    """The operator's table; no variants: no test is running."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    test: str | None = None
    header: str | None = None
    cookie: str | None = None
    salt: str = ""
    variants: tuple[TableVariant, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> AssignmentTable:
        if not self.variants:
            return self
        if sum(variant.weight for variant in self.variants) != BUCKETS:
            raise ValueError("variants: weights must add up to 100")
        if (self.header is None) == (self.cookie is None):
            raise ValueError("set exactly one of header or cookie")
        if not self.test:
            raise ValueError("test: missing")
        return self

    def variant_of(self, bucket: int) -> TableVariant:
        """The variant whose cumulative weights cover `bucket` (0..99)."""
        edge = 0
        for variant in self.variants:
            edge += variant.weight
            if bucket < edge:
                return variant
        return self.variants[-1]


def bucket(salt: str, key: str) -> int:
    """The key's bucket, 0..99: the first 8 bytes of SHA-256 of `salt:key`, big-endian, mod 100."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


NO_VARIANT = "none"


@dataclass(frozen=True, slots=True)
class VariantRoute:
    """Where one request goes: served here (`forward_to` None) or by another variant's Service."""

    test: str
    # The variant that serves it (a server whose revision is in no variant serves as `none`).
    variant: str
    assigned: Assigned
    forward_to: TableVariant | None = None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def _cookie(headers: list[tuple[bytes, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            cookie, _, content = part.strip().partition("=")
            if cookie == name:
                return content.strip('"')
    return None


class Assigner:
    """Follows the table in `path` and routes requests by it for the server running `revision`."""

    def __init__(self, path: Path, revision: str, *, rng: random.Random | None = None) -> None:
        self.path = path
        self.revision = revision
        self._rng = rng or random.Random()
        self._identity: tuple[int, int, int] | None = None
        self._next_check = 0.0
        self.table = AssignmentTable()
        self._mine: TableVariant | None = None
        self.reload()

    def reload(self) -> None:
        """Re-reads the table if the file changed; a file that is missing means no test, one that
        is broken keeps the table in force (logged), so a bad write never scatters users."""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            self._use(AssignmentTable(), None)
            return
        identity = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if identity == self._identity:
            return
        try:
            table = AssignmentTable.model_validate(orjson.loads(self.path.read_bytes()))
        except (OSError, orjson.JSONDecodeError, ValidationError) as error:
            log.error("assignment table %s not used (keeping the one in force): %s", self.path, error)
            self._identity = identity
            return
        self._use(table, identity)

    def _use(self, table: AssignmentTable, identity: tuple[int, int, int] | None) -> None:
        if table != self.table:
            mine = next((v for v in table.variants if v.revision == self.revision), None)
            log.info(
                "assignment table: test %s, %s; this server is %s",
                table.test or "none",
                ", ".join(f"{v.name} {v.weight}%" for v in table.variants) or "no variants",
                mine.name if mine else "no variant",
            )
            self._mine = mine
        self.table = table
        self._identity = identity

    def maybe_reload(self, now: float) -> None:
        if now >= self._next_check:
            self._next_check = now + POLL_S
            self.reload()

    @property
    def mine(self) -> TableVariant | None:
        return self._mine

    def route(self, headers: list[tuple[bytes, bytes]]) -> VariantRoute | None:
        """The route of a request with these headers; None when no test is running."""
        table = self.table
        if not table.variants or table.test is None:
            return None
        mine = self._mine
        named = _header(headers, VARIANT_HEADER)
        if named is not None:
            # Assigned by the server that forwarded it: served here whatever this table says, so
            # two servers with tables a refresh apart never pass a request back and forth.
            assigned = _header(headers, ASSIGNMENT_HEADER)
            how: Assigned = (
                "keyed" if assigned == b"keyed" else "random" if assigned == b"random" else "forwarded"
            )
            if mine is None or named.decode("latin-1") != mine.name:
                how = "misrouted"
            return VariantRoute(table.test, mine.name if mine else NO_VARIANT, how)
        key = _header(headers, table.header.lower().encode()) if table.header else None
        text = (
            key.decode("latin-1")
            if key is not None
            else (_cookie(headers, table.cookie) if table.cookie else None)
        )
        if text:
            target, how = table.variant_of(bucket(table.salt, text)), "keyed"
        else:
            target, how = table.variant_of(self._rng.randrange(BUCKETS)), "random"
        if mine is not None and target.name == mine.name:
            return VariantRoute(table.test, mine.name, how)
        return VariantRoute(table.test, target.name, how, forward_to=target)
