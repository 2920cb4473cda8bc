#!/usr/bin/python3
"""A stand-in for logind's sleep signals, for tests.

Owns org.freedesktop.login1 on the bus at ADDRESS, as logind does on the system bus, prints
"logind ready" once it does, then for each line on stdin emits PrepareForSleep from that name:
"sleep" sends true (going to sleep), "wake" sends false (resuming). Exits at the end of stdin.

Usage: logind.py ADDRESS   (needs Debian's python3-dbus and python3-gi)
"""
import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop

NAME = "org.freedesktop.login1"
PATH = "/org/freedesktop/login1"
IFACE = "org.freedesktop.login1.Manager"


class Manager(dbus.service.Object):
    @dbus.service.signal(IFACE, signature="b")
    def PrepareForSleep(self, start):
        pass


def main():
    # Exporting an object needs a main loop attached, though signals go out without running it.
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(sys.argv[1])
    name = dbus.service.BusName(NAME, bus, do_not_queue=True)
    manager = Manager(bus, PATH)
    print("logind ready", flush=True)
    for line in sys.stdin:
        word = line.strip()
        if word in ("sleep", "wake"):
            manager.PrepareForSleep(word == "sleep")
            bus.flush()
            print(f"sent {word}", flush=True)
    del name


if __name__ == "__main__":
    main()
