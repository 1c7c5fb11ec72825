"""Accounts: API keys and the credit ledger."""

from sticker_maker.accounts.keys import ApiKey, KeyStore, NewKey

__all__ = ["ApiKey", "KeyStore", "NewKey"]
