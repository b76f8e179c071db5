"""A minimal Django 3.2 project for tests/e2e/test_python_frameworks.py: one
template, one view with a CSRF-protected form, no database, nothing written."""
