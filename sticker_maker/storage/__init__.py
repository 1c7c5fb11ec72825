"""Where output files live. Local folder by default."""

from sticker_maker.storage.local import LocalStorage, Storage, new_file_name

__all__ = ["LocalStorage", "Storage", "new_file_name"]
