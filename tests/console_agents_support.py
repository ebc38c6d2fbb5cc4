"""The agents the console tests log in as: alice and bob (billing) and sue, their supervisor,
written to an agents file and synced into a fresh ACD store under ``tmp_path``."""

from __future__ import annotations

from pathlib import Path

from callcenter.settings import Settings
from telephony.acd.directory import Directory, make_agent, save_directory
from telephony.acd.store import AcdStore

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "sue": "sue-pw"}


def agents_settings(tmp_path: Path) -> Settings:
    """Settings whose data dir holds the agents file and an ACD store that knows them."""
    directory = Directory(agents=(
        make_agent("alice", PASSWORDS["alice"], name="Alice", skills=("billing",), rounds=1000),
        make_agent("bob", PASSWORDS["bob"], name="Bob", skills=("billing",), rounds=1000),
        make_agent("sue", PASSWORDS["sue"], name="Sue", skills=("billing",), supervisor=True, rounds=1000),
    ))
    save_directory(directory, tmp_path / "agents.yaml")
    settings = Settings(data_dir=tmp_path)
    store = AcdStore(settings.store_url)
    store.sync_directory(directory)
    store.close()
    return settings
