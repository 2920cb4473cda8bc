#!/usr/bin/python3
"""Asks the Secret Service on the session bus how many items match service=SERVICE and
username=ACCOUNT (the attributes keyring stores use), without unlocking or reading any secret.

Usage: secrets.py count SERVICE ACCOUNT   -> prints the number of matching items
       secrets.py owner PID               -> exits 0 once process PID serves the Secret Service
       secrets.py ready                   -> exits 0 once a default collection exists, unlocked

`owner` never calls the service itself: a call before the daemon under test has taken its name
would have the bus start another one (service activation), which then holds the name.
gnome-keyring also answers before `--unlock` has made and unlocked the login keyring (and
aliased it "default"); a store call in between finds no default collection: `ready` waits that out.
"""
import sys

import dbus

NAME = "org.freedesktop.secrets"


def ready(bus) -> int:
    service = bus.get_object(NAME, "/org/freedesktop/secrets")
    path = service.ReadAlias("default", dbus_interface="org.freedesktop.Secret.Service")
    if path == "/":
        return 1
    collection = bus.get_object(NAME, path)
    locked = collection.Get(
        "org.freedesktop.Secret.Collection", "Locked", dbus_interface="org.freedesktop.DBus.Properties"
    )
    return 1 if locked else 0


def owner(bus, pid: int) -> int:
    daemon = bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus")
    if not daemon.NameHasOwner(NAME, dbus_interface="org.freedesktop.DBus"):
        return 1
    serving = daemon.GetConnectionUnixProcessID(NAME, dbus_interface="org.freedesktop.DBus")
    return 0 if serving == pid else 3


def main() -> int:
    if sys.argv[1:] == ["ready"]:
        return ready(dbus.SessionBus())
    if len(sys.argv) == 3 and sys.argv[1] == "owner":
        return owner(dbus.SessionBus(), int(sys.argv[2]))
    if len(sys.argv) != 4 or sys.argv[1] != "count":
        print(__doc__, file=sys.stderr)
        return 2
    bus = dbus.SessionBus()
    service = bus.get_object(NAME, "/org/freedesktop/secrets")
    unlocked, locked = service.SearchItems(
        {"service": sys.argv[2], "username": sys.argv[3]},
        dbus_interface="org.freedesktop.Secret.Service",
    )
    print(len(unlocked) + len(locked))
    return 0


if __name__ == "__main__":
    sys.exit(main())
