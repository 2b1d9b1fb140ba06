"""Persistence: flows, versions, runs, steps, credentials, settings and API keys on SQLite (default) or PostgreSQL.

```
 services ──▶ Store (sync, SQLAlchemy Core)          ─┐
 Engine   ──▶ SqlRecorder (precompiled SQL, orjson)   ─┴─▶ flows · flow_versions · runs · steps · credentials · settings
                                                            · api_keys
```
"""

from .db import database_url, init_db, make_engine, normalize_url, resolve_data_dir
from .lease import Lease
from .recorder import SqlRecorder
from .secrets import SecretKeyError
from .store import (
    CREDENTIAL_CACHE,
    DEFAULT_SETTINGS,
    LEASE,
    AlreadyExists,
    ApiKeyInfo,
    CredentialInfo,
    CredentialInUse,
    FlowSummary,
    NotFound,
    RunRecord,
    Store,
    StoredFlow,
    StoreError,
    TransitionRefused,
    VersionConflict,
    VersionInfo,
    WaitGone,
    hash_api_key,
    make_owner_id,
)

__all__ = ["CREDENTIAL_CACHE", "DEFAULT_SETTINGS", "LEASE", "AlreadyExists", "ApiKeyInfo", "CredentialInUse",
           "CredentialInfo",
           "FlowSummary", "Lease", "NotFound", "RunRecord", "SecretKeyError", "SqlRecorder", "Store", "StoreError",
           "StoredFlow",
           "TransitionRefused", "VersionConflict", "VersionInfo", "WaitGone", "database_url", "hash_api_key", "init_db",
           "make_engine", "make_owner_id", "normalize_url", "resolve_data_dir"]
