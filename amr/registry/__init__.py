"""The meter registry in the database: entries, their store, apply/import/export, edits and live reload."""
