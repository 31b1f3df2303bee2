"""Builders the tests share: models, report entries, inner sessions, paths."""
