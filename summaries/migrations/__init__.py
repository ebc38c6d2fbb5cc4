"""Alembic migrations of the CRM schema (run programmatically by ``CrmStore.start``)."""
