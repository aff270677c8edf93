"""Helpers shared by the test folders (importable as `tests.support`; see pyproject's pytest
`pythonpath`): servers on free loopback ports, in this process or as real processes."""
