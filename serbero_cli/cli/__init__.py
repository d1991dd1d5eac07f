"""Command-line interface: Typer app, one module per subcommand; parses, calls a run_*(), renders."""


def main() -> None:
    from serbero_cli.cli.app import main as run

    run()
