"""What the commands import: the store runs SQLAlchemy Core only, so the ORM (about 0.1 s to import and
configure) is never loaded, neither by the entry points nor by a store that migrates and writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ENTRY_POINTS = ("amr.app", "amr.api.app", "amr.collector.collector", "amr.ingest.bulk")


def _modules_loaded(probe: str) -> list[str]:
    """Run `probe` in a fresh interpreter; the names of the loaded modules it prints on its last line."""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return done.stdout.strip().splitlines()[-1].split()


def test_the_entry_points_and_every_table_do_not_import_the_orm() -> None:
    probe = (
        "import importlib, pkgutil, sys\n"
        f"for name in {ENTRY_POINTS!r}:\n"
        "    importlib.import_module(name)\n"
        "import amr.store\n"
        "for module in pkgutil.iter_modules(amr.store.__path__, 'amr.store.'):\n"
        "    if module.name != 'amr.store.migrations':\n"
        "        importlib.import_module(module.name)\n"
        "print('amr.store.interval_models' in sys.modules,\n"
        "      *sorted(m for m in sys.modules if m.startswith('sqlalchemy.orm')))\n"
    )
    assert _modules_loaded(probe) == ["True"]


def test_a_store_that_migrates_and_writes_does_not_import_the_orm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'amr.sqlite'}"
    probe = (
        "import sys\nfrom datetime import UTC, datetime\n"
        "from amr.config import DatabaseConfig\nfrom amr.store import Store\nfrom amr.store.audit_trail import audit\n"
        f"store = Store.open(DatabaseConfig(url={url!r}), 'Europe/Moscow')\n"
        "with store.engine.begin() as conn:\n"
        "    audit(conn, datetime.now(UTC), 'test', 'probe', 'store', 'the ORM stays out')\n"
        "store.close()\n"
        "print('alembic' in sys.modules, *sorted(m for m in sys.modules if m.startswith('sqlalchemy.orm')))\n"
    )
    assert _modules_loaded(probe) == ["True"]
