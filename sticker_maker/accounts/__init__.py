"""Accounts and protection: API keys, credits (per GPU-second), limits, idempotency,
webhooks and retention.

Modules: ``keys`` (KeyStore), ``billing`` (the ledger's rules), ``limits``,
``admission`` (what a submit must pass), ``lifecycle`` (what happens when a job
changes state, in the store's transaction), ``idempotency``, ``webhooks`` and
``webhook_sender``, ``retention`` (the sweeper).
"""

from sticker_maker.accounts.keys import ApiKey, KeyStore, NewKey

__all__ = ["ApiKey", "KeyStore", "NewKey"]
