"""``nettools run FILE``: many services from one TOML file, in one process, on one hub.

By seam:

* ``options``: how each setting of a service is read (durations, sizes,
  addresses, endpoints, paths) and what a type of service is (``Kind``);
* ``services_tcp``, ``services_http``, ``services_zmq``: the types of service
  (echo, chat, forward; wschat, serve, static, feeds; zmq-proxy, zmq-tcp,
  zmq-ws), each its tool started through its public API; ``kinds``: all of them
  by name;
* ``config``: the file read and checked, errors with their line;
* ``running``: what a started service hands the runner;
* ``runner``: ``Runner`` -- start, announce, reload on SIGHUP, stop on
  SIGINT/SIGTERM, summaries.

Usable without the CLI::

    from nettools.tools.run import Runner
    Runner("fixtures.toml", ready_file="ready.json").run()
"""

from .config import ConfigError, RunConfig, ServiceSpec, load_config, parse_config
from .kinds import KINDS
from .runner import Runner, StartError

__all__ = [
    "Runner",
    "StartError",
    "ConfigError",
    "RunConfig",
    "ServiceSpec",
    "load_config",
    "parse_config",
    "KINDS",
]
