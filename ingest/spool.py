"""The spool: page events a sink accepted (202) but could not deliver before its process
stopped, kept on local disk and sent again by the next process that builds a sink.

A file is ``<INGEST_SPOOL_DIR>/page-<UTC time>-<pid>-<random>.jsonl``: one page row per line,
the JSON a topic message or a ClickHouse insert carries (``jq`` reads it). It is written under a
``.tmp`` name, synced, then renamed, so a file either is complete or does not exist.

Replaying a file first claims it by renaming it to ``<name>.replaying-<pid>-<token>`` (only one
process of several sharing the folder wins the rename), and deletes it only once its rows are
delivered: a crash during replay leaves the claimed file, which the next process takes over
(its owner is no longer running). Rows sent twice that way are stored once: the writers
deduplicate by event id (events.dedup).

Entry points: write(rows), has_pending(), claim_next(), release(claim), done(claim).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from prometheus_client import Counter

SPOOLED = Counter(
    "naboria_ingest_spooled_events_total",
    "Accepted page events written to the spool at shutdown because they could not be delivered.",
)
REPLAYED = Counter(
    "naboria_ingest_replayed_events_total",
    "Page events of spool files delivered again (Kafka acknowledged or ClickHouse inserted).",
)

SUFFIX = ".jsonl"
CLAIMED = ".replaying-"
# Tells this process's claims apart from those of an earlier process that had the same pid
# (a container restarts its server as pid 1 every time).
_TOKEN = secrets.token_hex(4)


@dataclass
class Claim:
    """A spool file this process is replaying: its rows, and how many messages still wait."""

    path: Path
    rows: list[bytes]
    outstanding: int = 0
    delivered: int = 0


def _folder() -> Path:
    folder: Path = settings.INGEST_SPOOL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write(rows: Sequence[bytes]) -> Path:
    """Persist ``rows`` in a new spool file (atomically); its path."""
    folder = _folder()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = folder / f"page-{stamp}-{os.getpid()}-{secrets.token_hex(4)}{SUFFIX}"
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as output:
        for row in rows:
            output.write(row)
            output.write(b"\n")
        output.flush()
        os.fsync(output.fileno())
    temporary.rename(path)
    _sync_folder(folder)
    SPOOLED.inc(len(rows))
    return path


def _sync_folder(folder: Path) -> None:
    # The rename is durable only once the folder's entry is.
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _owner_gone(name: str) -> bool:
    """Whether the process that claimed this file is no longer replaying it."""
    owner = name.rpartition(CLAIMED)[2]
    pid_text, _, token = owner.partition("-")
    if token == _TOKEN:
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return True
    if pid == os.getpid():
        return True  # an earlier process with our pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _candidates() -> list[Path]:
    folder = settings.INGEST_SPOOL_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.iterdir()):
        if path.name.endswith(SUFFIX) or (CLAIMED in path.name and _owner_gone(path.name)):
            found.append(path)
    return found


def has_pending() -> bool:
    return bool(_candidates())


def claim_next() -> Claim | None:
    """Claim the oldest spool file nobody replays and read its rows; None when there is none."""
    for path in _candidates():
        pending_name = path.name.partition(CLAIMED)[0]
        claimed = path.with_name(f"{pending_name}{CLAIMED}{os.getpid()}-{_TOKEN}")
        try:
            path.rename(claimed)
        except FileNotFoundError:
            continue  # another process claimed it first
        rows = [line for line in claimed.read_bytes().split(b"\n") if line]
        return Claim(path=claimed, rows=rows)
    return None


def release(claim: Claim) -> None:
    """Give a claimed file back (its replay failed); it is tried again later."""
    claim.path.rename(claim.path.with_name(claim.path.name.partition(CLAIMED)[0]))


def done(claim: Claim) -> None:
    """Delete a claimed file: its rows were delivered, or spooled again in a newer file."""
    claim.path.unlink(missing_ok=True)
