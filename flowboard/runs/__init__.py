"""Starting runs: the launcher (what triggers and the app call) and the dispatchers that run what it accepts.

```
 trigger ─admit─▶ Launcher.accept / run / start ─▶ Dispatcher ─┬─ InProcess: Engine.run here, under the flow's RunGate
                  (records the run as queued first)             └─ Procrastinate: a job with the run id, for a worker
```
"""

from .dispatch import Dispatcher, InProcess, RunOrder
from .launcher import Launcher

__all__ = ["Dispatcher", "InProcess", "Launcher", "RunOrder"]
