"""Green ZeroMQ: ``from nettools import zmq`` is ``nettools.green.zmq``, a drop-in for pyzmq.

Usage, in a greenthread (other greenthreads keep running while it waits)::

    from nettools import zmq

    sock = zmq.Context.instance().socket(zmq.PULL)
    sock.bind("tcp://127.0.0.1:5555")
    message = sock.recv()
"""

from .green.zmq import *  # noqa: F403 - the whole green namespace
from .green.zmq import __all__, __getattr__  # noqa: F401 - pyzmq's names beyond __all__
