"""The commands: `python -m sweep` (`main`: the Hydra sweep), `python -m sweep.cli.server` (the tracking
server and UI), `python -m sweep.cli.runs` (running runs, stale ones failed), `python -m sweep.cli.reference`
(the reference pages), and what they share (`app`: the Hydra app, `plan`: the grid before it runs).

Nothing is imported here, so that a light command (runs, server) does not load the job's libraries.
"""
