"""Drop-in green versions of standard library modules.

``from nettools.green import socket`` gives a module that behaves like the
standard ``socket`` module, but whose blocking calls wait on the hub instead
of blocking the OS thread.  Each module lists in ``__patched__`` the names that
``nettools.monkey_patch()`` copies onto the real standard library module.
"""
