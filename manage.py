#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_project.settings.base")
    from django.core.management import execute_from_command_line

    from wallet_project.core.telemetry import configure

    configure()  # OpenTelemetry, when the OTEL_* variables ask for it (the API server and every worker)

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
