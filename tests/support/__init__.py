"""Test-only helpers shared by tests and bench scripts (not shipped in the package)."""
