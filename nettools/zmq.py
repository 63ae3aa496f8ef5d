"""Green ZeroMQ: ``from nettools import zmq`` is ``nettools.green.zmq``, a drop-in for pyzmq.

    from nettools import zmq

    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:5555")
    msg = sock.recv()  # waits on the hub; other greenthreads keep running
"""

from .green.zmq import *  # noqa: F403 - the whole green namespace
from .green.zmq import __all__, __getattr__  # noqa: F401 - pyzmq's names beyond __all__
