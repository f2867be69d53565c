"""Everything MLflow, one concern a module: `names` (every param, metric and tag name, with its meaning),
`store` (the URI, the client, the experiment), `run` (one buffered run per job and the sweep's parent
run), `liveness` (SIGTERM, heartbeats, stale and orphaned runs), `queries` (reading runs back),
`progress` (a running sweep's jobs left and time left), `models` (logged and registered models) and
`ui` (the MLflow UI's view of a sweep, the report on the sweep's run). Callers use `sweep.tracking.X`.
"""

from sweep.tracking.liveness import *  # noqa: F403
from sweep.tracking.models import *  # noqa: F403
from sweep.tracking.names import *  # noqa: F403
from sweep.tracking.names import int8_key, runtime_key
from sweep.tracking.progress import *  # noqa: F403
from sweep.tracking.queries import *  # noqa: F403
from sweep.tracking.run import *  # noqa: F403
from sweep.tracking.store import *  # noqa: F403
from sweep.tracking.ui import *  # noqa: F403

__all__ = ["int8_key", "runtime_key"]  # and every name of the modules above
