"""The admin API: list, inspect, change, export runs; tasks; usage and pricing reports.

`router.admin_router(settings)` is the one thing the app wires in; `errors` renders every
failure (ours and litestar's) in the OpenAI error shape.
"""
