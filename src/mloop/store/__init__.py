"""mloop's platform database: its tables, sessions and migrations."""

from mloop.store.db import Database, open_database
from mloop.store.models import Base, PredictionRecord, StageTransition

__all__ = ["Base", "Database", "PredictionRecord", "StageTransition", "open_database"]
