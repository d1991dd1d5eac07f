from serbero_cli.cli import main

main()
