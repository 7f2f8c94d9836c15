"""Engine, sessions and automatic migrations for the platform database (SQLite or PostgreSQL)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mloop.errors import ConfigError, ServiceUnavailableError
from mloop.settings import Settings, get_settings

MIGRATIONS = Path(__file__).with_name("migrations")


def read_json(text: str | bytes):
    """A JSON column's value: orjson (a third of `json.loads`' CPU on the console's 3,000
    logged feature rows), falling back to `json.loads` for what orjson refuses and Python
    writes (NaN, Infinity, integers beyond 64 bits)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


class Database:
    """A platform database at `url`, migrated to the newest schema when opened."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 30}} if self.is_sqlite else {"pool_pre_ping": True}
        kwargs["json_deserializer"] = read_json
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except ImportError as exc:
            raise ConfigError(
                f"no driver for {parsed.drivername}: {exc}",
                hint="pip install 'mloop[postgres]'",
            ) from exc
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def migrate(self) -> None:
        """Apply every Alembic migration not yet applied (idempotent).

        Each feature area adds its tables in its own revision off `0001`, so the tree may have
        several heads; all of them are applied.
        """
        from alembic import command  # lazy: Alembic loads only when a database is opened
        from alembic.config import Config  # lazy: as above

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "heads")
        except Exception as exc:
            raise ServiceUnavailableError(
                f"cannot migrate the platform database at {self.safe_url}: {exc}"
            ) from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def transient(exc: BaseException) -> bool:
    """A database error worth retrying: the server gone or unreachable, the disk full, a lock.

    Follows `__cause__` (services wrap driver errors); a constraint or SQL error is permanent.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OperationalError | InterfaceError):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__
    return False


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers and one writer work at once; foreign keys are off by default in SQLite."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A cache keyed by the settings' database URL: one engine (one pool, one migration) per URL
# per process. mloop.platform.Platform holds the one it uses and releases its connections on
# close; services not handed a Database yet open it here and share the same object, which
# the audit chain's in-process lock relies on (two objects would be two chains' writers).
_opened: dict[str, Database] = {}
_lock = threading.Lock()


def open_database(settings: Settings | None = None) -> Database:
    """The migrated platform database for these settings, one per URL per process (cached)."""
    settings = settings or get_settings()
    url = settings.database_url
    with _lock:
        if url not in _opened:
            settings.ensure_home()
            database = Database(url)
            database.migrate()
            _opened[url] = database
        return _opened[url]
