#!/usr/bin/python3
"""Asks the Secret Service on the session bus how many items match service=SERVICE and
username=ACCOUNT (the attributes keyring stores use), without unlocking or reading any secret.

Usage: secrets.py count SERVICE ACCOUNT   -> prints the number of matching items
"""
import sys

import dbus


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] != "count":
        print(__doc__, file=sys.stderr)
        return 2
    bus = dbus.SessionBus()
    service = bus.get_object("org.freedesktop.secrets", "/org/freedesktop/secrets")
    unlocked, locked = service.SearchItems(
        {"service": sys.argv[2], "username": sys.argv[3]},
        dbus_interface="org.freedesktop.Secret.Service",
    )
    print(len(unlocked) + len(locked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
