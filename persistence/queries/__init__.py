"""Read and manage runs and tasks for the admin API and the `airuns runs` CLI.

Every query takes a `Principal` and applies `scope.visible()` to it, so what a caller may see
is decided in one place. Lists are keyset-paginated (`keyset.py`) with opaque cursors
(`cursor.py`).
"""
