"""The kernel: the hub and what greenthreads are made of.

``hub`` (the event loop of one OS thread) with ``fdwait`` (its waits on file
descriptors) and ``poller`` (epoll, or poll(2) where epoll is missing);
``timeout``, ``greenthread`` (spawn, sleep, kill), ``sync`` (Event, Semaphore,
Lock), ``queue``, ``pool`` (GreenPool, GreenPile), ``local`` and ``tpool``
(calls in real threads).  Nothing here knows about sockets beyond file
descriptors to wait on, and nothing here imports from the rest of the package.
"""
