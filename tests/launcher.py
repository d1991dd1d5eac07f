"""Run a phase in a subprocess with a checkpoint that stops it: how crash tests reach an exact point.

    python -m tests.launcher --config PATH --stop-at NAME {listen|dispatch-once}

The phase runs exactly as `serbero` runs it (the same run function, its lock, its database), and
when it reaches the named checkpoint it prints `HOOK <name> <detail>` on stderr and waits, so the
test can SIGKILL it there. The product has no test switch of its own: the test brings this one.
"""

from __future__ import annotations

import argparse
import sys
import time


def stop_at(name: str):
    def checkpoint(reached: str, detail: object) -> None:
        if reached == name:
            sys.stderr.write(f"HOOK {reached} {detail}\n")
            sys.stderr.flush()
            time.sleep(120)  # the test kills the process here

    return checkpoint


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--stop-at", required=True)
    parser.add_argument("phase", choices=("listen", "dispatch-once"))
    args = parser.parse_args()
    from serbero_cli.config import load_config

    config = load_config(args.config)
    if args.phase == "listen":
        from serbero_cli.cli.listen import resolution_hook
        from serbero_cli.listen.run import run_listen

        result = run_listen(
            config, on_resolved=resolution_hook(config), checkpoint=stop_at(args.stop_at)
        )
    else:
        from serbero_cli.dispatch.run import run_dispatch_once

        result = run_dispatch_once(config, dry_run=False, checkpoint=stop_at(args.stop_at))
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
