"""The ``sticker-maker`` command."""
