"""The content-addressed conversion cache: ``storage`` (entries on disk, locked per key, checked
against their notes) and ``keys`` (what decides a converter's output, hashed)."""
