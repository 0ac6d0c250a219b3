"""Load generator for a Flowersec tunnel (api.md §13, tunnel.md §10).

It drives any tunnel reachable by URL with the reference's attempt
definition, scheduling and per-stage timers, so that figures from two
implementations can be compared in one run. Work is spread over several
processes; the parent merges their samples into one JSON report.
"""
