#!/usr/bin/python3
"""A stand-in system tray for tests, and a way to read and click a tray menu over D-Bus.

  traywatch.py serve FILE   Owns org.kde.StatusNotifierWatcher on the session bus, as a desktop's
                            tray does, with a host registered; appends each item that registers
                            to FILE as one JSON line {"bus", "path"}. Runs until killed.
  traywatch.py menu FILE    Prints the newest item's menu as JSON, read through
                            com.canonical.dbusmenu: [{"id", "label", "enabled", "toggle",
                            "children"}].
  traywatch.py click FILE ID
                            Sends the menu item ID a real "clicked" event.
  traywatch.py icon FILE    Prints the item's icon as JSON: {"name", "theme_path", "status"}.

Needs Debian's python3-dbus and python3-gi (as notifyd.py does).
"""
import json
import re
import sys
import time

import dbus
import dbus.service

WATCHER = "org.kde.StatusNotifierWatcher"
ITEM = "org.kde.StatusNotifierItem"
MENU = "com.canonical.dbusmenu"
PROPS = "org.freedesktop.DBus.Properties"


class Watcher(dbus.service.Object):
    def __init__(self, bus, out):
        super().__init__(bus, "/StatusNotifierWatcher")
        self.out = out
        self.items = []

    @dbus.service.method(WATCHER, in_signature="s", out_signature="", sender_keyword="sender")
    def RegisterStatusNotifierItem(self, service, sender=None):
        # An item names either its object path (on the caller's connection) or a bus name.
        path = service if service.startswith("/") else "/StatusNotifierItem"
        bus = sender if service.startswith("/") else service
        self.items.append(f"{bus}{path}")
        with open(self.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"bus": str(bus), "path": str(path)}) + "\n")
        self.StatusNotifierItemRegistered(f"{bus}{path}")

    @dbus.service.method(WATCHER, in_signature="s", out_signature="")
    def RegisterStatusNotifierHost(self, service):
        pass

    @dbus.service.signal(WATCHER, signature="s")
    def StatusNotifierItemRegistered(self, item):
        pass

    @dbus.service.signal(WATCHER, signature="")
    def StatusNotifierHostRegistered(self):
        pass

    def props(self):
        return {
            "RegisteredStatusNotifierItems": dbus.Array(self.items, signature="s"),
            "IsStatusNotifierHostRegistered": dbus.Boolean(True),
            "ProtocolVersion": dbus.Int32(0),
        }

    @dbus.service.method(PROPS, in_signature="ss", out_signature="v")
    def Get(self, interface, name):
        return self.props()[name]

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, interface):
        return self.props() if interface == WATCHER else {}


def serve(out):
    from dbus.mainloop.glib import DBusGMainLoop
    from gi.repository import GLib

    DBusGMainLoop(set_as_default=True)
    bus = dbus.SessionBus()
    name = dbus.service.BusName(WATCHER, bus, do_not_queue=True)
    Watcher(bus, out)
    print("traywatch ready", flush=True)
    try:
        GLib.MainLoop().run()
    finally:
        del name


def newest(out):
    with open(out, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    if not lines:
        sys.exit("no tray item has registered")
    return json.loads(lines[-1])


def item(out):
    reg = newest(out)
    bus = dbus.SessionBus()
    return bus, reg["bus"], bus.get_object(reg["bus"], reg["path"])


def plain(v):
    """A D-Bus value as plain JSON."""
    if isinstance(v, (dbus.String, dbus.ObjectPath)):
        return str(v)
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.Int32, dbus.UInt32, dbus.Int64, dbus.UInt64, dbus.Int16, dbus.UInt16, dbus.Byte)):
        return int(v)
    return v


def node(layout):
    ident, props, children = layout
    # GTK's mnemonic form: "_x" underlines x, "__" is a literal underscore.
    label = re.sub(r"_(_?)", r"\1", str(props.get("label", "")))
    return {
        "id": int(ident),
        "label": label,
        "enabled": bool(props.get("enabled", True)),
        "visible": bool(props.get("visible", True)),
        "separator": str(props.get("type", "")) == "separator",
        "toggle": plain(props["toggle-state"]) if "toggle-state" in props else None,
        "children": [node(c) for c in children],
    }


def menu_object(out):
    bus, name, obj = item(out)
    path = obj.Get(ITEM, "Menu", dbus_interface=PROPS)
    return bus.get_object(name, path)


def main():
    cmd, out = sys.argv[1], sys.argv[2]
    if cmd == "serve":
        serve(out)
    elif cmd == "menu":
        menu = menu_object(out)
        _rev, layout = menu.GetLayout(0, -1, dbus.Array([], signature="s"), dbus_interface=MENU)
        print(json.dumps(node(layout)["children"]))
    elif cmd == "click":
        menu = menu_object(out)
        menu.Event(
            dbus.Int32(int(sys.argv[3])),
            "clicked",
            dbus.Int32(0, variant_level=1),
            dbus.UInt32(int(time.time())),
            dbus_interface=MENU,
        )
    elif cmd == "icon":
        _bus, _name, obj = item(out)
        get = lambda p: plain(obj.Get(ITEM, p, dbus_interface=PROPS))  # noqa: E731
        print(json.dumps({"name": get("IconName"), "theme_path": get("IconThemePath"), "status": get("Status")}))
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
