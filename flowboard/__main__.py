"""The `flowboard` command, as installed and as `python -m flowboard`: `cli.main` with the garbage collector off
while it starts.

Starting `flowboard serve` makes a few hundred thousand objects (modules, classes, pydantic's schemas, SQLAlchemy's
constructs) and no garbage; the collector's passes over them were ~10% of the CPU before the first webhook answers
(docs/engine.md, start-up). `cli.main` turns it back on at once for every command but `serve`, and the server does
once the editor is built (`server.settle_collector`, which then freezes what start-up made), or failed to build.
"""

import gc


def main() -> int:
    gc.disable()
    from .cli import main as command

    return command()


if __name__ == "__main__":
    raise SystemExit(main())
