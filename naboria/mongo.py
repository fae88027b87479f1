"""MongoDB access for the whole product; the only module that imports ``mongoengine``'s
connection machinery and ``mongomock``.

With ``MONGODB_URL`` unset the documents live in an in-process store (mongomock), rebuilt
from PostgreSQL at start; otherwise mongoengine connects to the configured server.

Entry points:
    connect()  registers the default mongoengine connection (idempotent, lazy)
    ping()     raises ``MongoUnavailable`` if the store does not answer
    reset()    disconnects (tests that switch settings)
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings

_lock = threading.Lock()
_connected = False


class MongoUnavailable(Exception):
    """The MongoDB server could not be reached."""


def connect() -> Any:
    import mongoengine

    global _connected
    if not _connected:
        with _lock:
            if not _connected:
                if settings.MONGODB_URL:
                    mongoengine.connect(
                        db=settings.MONGODB_DATABASE,
                        host=settings.MONGODB_URL,
                        uuidRepresentation="standard",
                        serverSelectionTimeoutMS=3000,
                        connectTimeoutMS=3000,
                    )
                else:
                    import mongomock

                    mongoengine.connect(
                        db=settings.MONGODB_DATABASE,
                        host=f"mongodb://localhost/{settings.MONGODB_DATABASE}",
                        mongo_client_class=mongomock.MongoClient,
                        uuidRepresentation="standard",
                    )
                _connected = True
    return mongoengine.connection.get_db()


def ping() -> None:
    from pymongo.errors import PyMongoError

    try:
        connect().command("ping")
    except PyMongoError as error:
        raise MongoUnavailable(str(error).split(",")[0]) from error


def reset() -> None:
    import mongoengine

    global _connected
    with _lock:
        mongoengine.disconnect()
        _connected = False
