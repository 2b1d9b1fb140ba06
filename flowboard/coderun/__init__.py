"""The Code node's task runner: user Python runs in sandboxed worker processes, never in the server's process.

pool.py is the server's side (a pool of warm workers), protocol.py the wire, sandbox.py how a worker is started
(bubblewrap, or limits only), child.py the worker itself and seccomp.py its system-call filter. See docs/code-node.md.
"""

from .pool import CodeFailed, CodeResult, CodeRunner

__all__ = ["CodeFailed", "CodeResult", "CodeRunner"]
