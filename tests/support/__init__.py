"""Helpers shared by the test tiers (importable as ``support``: tests/conftest.py
puts tests/ on sys.path).  Nothing here is part of ipvsctl."""
