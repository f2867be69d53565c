"""Helpers shared by the tests (importable by subprocess jobs too: run_cli puts tests/ on PYTHONPATH)."""
