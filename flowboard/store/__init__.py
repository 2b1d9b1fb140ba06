"""Persistence: flows, versions, runs, steps, credentials and settings on SQLite (default) or PostgreSQL.

```
 services ──▶ Store (sync, SQLAlchemy Core)          ─┐
 Engine   ──▶ SqlRecorder (precompiled SQL, orjson)   ─┴─▶ flows · flow_versions · runs · steps · credentials · settings
```
"""

from .db import database_url, init_db, make_engine, normalize_url, resolve_data_dir
from .recorder import SqlRecorder
from .secrets import SecretKeyError
from .store import (
    DEFAULT_SETTINGS,
    AlreadyExists,
    CredentialInfo,
    FlowSummary,
    NotFound,
    RunRecord,
    Store,
    StoredFlow,
    StoreError,
    VersionConflict,
    VersionInfo,
    make_owner_id,
)

__all__ = ["DEFAULT_SETTINGS", "AlreadyExists", "CredentialInfo", "FlowSummary", "NotFound", "RunRecord",
           "SecretKeyError", "SqlRecorder", "Store", "StoreError", "StoredFlow", "VersionConflict", "VersionInfo",
           "database_url", "init_db", "make_engine", "make_owner_id", "normalize_url", "resolve_data_dir"]
