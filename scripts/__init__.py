"""Commands run as `python scripts/<name>.py`; a package only so they can share scripts/report_cli.py."""
