"""A crawl spread over machines: one coordinator, any number of workers, over ZeroMQ.

    # the coordinator: the usual Crawler, whose requests go to the workers
    coord = Coordinator("tcp://0.0.0.0:5557", lease=30.0)
    endpoint = coord.start()
    result = Crawler(["https://docs.example/"], fetcher=coord).run()
    coord.close()  # tells the workers the crawl is done

    # on any machine, any number of times
    CrawlWorker("tcp://coordinator.example:5557", concurrency=16).run()

The coordinator runs the one crawl engine (``engine.py`` and the modules it
uses): frontier, de-duplication, scope, depth, robots.txt rules, politeness
(per-host slots, delays, Crawl-delay, Retry-After) and the report all stay
there.  Only the engine's fetch-and-parse step (``fetcher.py``) moves:
``Coordinator`` is a ``Fetcher`` whose ``fetch`` sends a job to a worker and
waits for the answer.  A job is sent only from inside the engine's per-host
slot, so no more requests are in flight than the crawl's politeness allows,
whichever worker does them.  Workers fetch with their own ``HttpClient``,
parse HTML and normalise the links, and send back what the engine reads
(status, final URL, content type, size, the Location and Retry-After headers,
links and anchors; the body only for robots.txt and sitemaps).

Modules: ``coordinator`` (the ``Coordinator``: job queue, credit, leases),
``worker`` (the ``CrawlWorker``), ``wire`` (the messages between them).
"""

from ....green.zmq.endpoints import EndpointError
from .coordinator import Coordinator, bind_endpoint
from .wire import MAX_MESSAGE, PROTOCOL_VERSION
from .worker import CrawlWorker, WorkerStats, connect_endpoint, default_name, worker_agent

__all__ = [
    "Coordinator",
    "CrawlWorker",
    "WorkerStats",
    "EndpointError",
    "MAX_MESSAGE",
    "PROTOCOL_VERSION",
    "bind_endpoint",
    "connect_endpoint",
    "default_name",
    "worker_agent",
]
