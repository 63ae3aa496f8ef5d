"""Port forwarding: relay every connection (or UDP datagram) on a listening socket
to a target, with faults on demand.

A ``Forwarder`` is a set of named rules, each a ``Proxy`` (TCP or unix
sockets) or a ``UdpProxy``.  Each accepted connection gets a connection to one
of its rule's targets and two directions; half-closes are passed on, a reset on
one side resets the other, and plain bytes move with ``os.splice`` unless
toxics (Toxiproxy's faults) apply to a direction.  The package, by seam:

* ``rules``: the rule syntax, ``RuleOptions``, target look-up, listening, allow/deny;
* ``targets``: several targets per rule, round-robin or first, passive and active health;
* ``relay``: one connection's two directions (the splice and copy pumps, the
  half-close and reset rules, the hand-over to and from the toxic path);
* ``toxics``: the toxic definitions, their checks and spellings;
  ``faults``: what they do to a connection (the stages and the toxic pump);
* ``proxyproto``: PROXY protocol headers, read and sent;
* ``proxy``: ``Proxy`` -- a TCP rule at run time, each connection's life;
  ``udp``: ``UdpProxy`` -- sessions per client address;
* ``forwarder``: ``Forwarder`` -- the rules, the shared limits, logging;
* ``api``: Toxiproxy's HTTP API (``ApiServer``); ``rulesfile``: TOML rules
  files and ``RulesReloader``; ``tls``: TLS contexts; ``errors``: wording.

Usable without the CLI -- start a forwarder with these rules, toxics and API
address, on the calling thread's hub::

    from nettools.tools.forward import (
        ApiServer, Forwarder, RuleOptions, open_rules, parse_toxic_option)

    rules = open_rules(["db=127.0.0.1:7000:127.0.0.1:5432", "udp:0:127.0.0.1:53"],
                       options=RuleOptions(balance="first"))
    fwd = Forwarder(rules, idle_timeout=None).start()
    fwd["db"].add_toxic({"type": "latency", "attributes": {"latency": 100}})
    fwd["db"].add_toxic(parse_toxic_option("timeout@upstream:timeout=500")[1])
    api = ApiServer(fwd, "127.0.0.1:8474").start()      # Toxiproxy's clients now work
    print(fwd.addresses, api.address)
    ...
    api.stop(5)
    fwd.stop(5)

A rules file, or any configuration already parsed into a dict (a ``[[rule]]``
list of tables, see ``rulesfile``), becomes rules with ``load_rules(path)`` or
``rules_from_config(dict)``, then ``resolve_rules`` and ``fwd.open(rule)``.
"""

from .api import DEFAULT_API_ADDRESS, TOXIPROXY_VERSION, ApiServer, ToxiproxyApi
from .errors import ForwardError
from .forwarder import (
    FDS_PER_CONNECTION,
    KEEPALIVE,
    Forwarder,
    ForwardStats,
    log_json_lines,
    set_keepalive,
)
from .proxy import Proxy
from .relay import HAVE_SPLICE
from .rules import (
    BALANCE,
    PROXY_PROTOCOLS,
    RULE_SYNTAX,
    ResolvedRule,
    Rule,
    RuleOptions,
    RuleSpec,
    Target,
    open_resolved,
    open_rules,
    parse_networks,
    parse_rule,
    resolve_rules,
    resolve_target,
    unix_target,
)
from .rulesfile import (
    RulesFileError,
    RulesReloader,
    announce_proxy,
    load_rules,
    report_reload,
    rules_from_config,
    with_toxics,
)
from .tls import target_tls_context
from .toxics import TOXIC_OPTION_SYNTAX, TOXIC_TYPES, Toxic, parse_toxic_option, toxic_from_json
from .udp import UdpProxy

__all__ = [
    "ApiServer",
    "ToxiproxyApi",
    "DEFAULT_API_ADDRESS",
    "TOXIPROXY_VERSION",
    "RulesFileError",
    "RulesReloader",
    "announce_proxy",
    "report_reload",
    "load_rules",
    "rules_from_config",
    "with_toxics",
    "Forwarder",
    "Proxy",
    "UdpProxy",
    "ForwardError",
    "KEEPALIVE",
    "set_keepalive",
    "RuleOptions",
    "BALANCE",
    "PROXY_PROTOCOLS",
    "open_resolved",
    "Toxic",
    "TOXIC_TYPES",
    "TOXIC_OPTION_SYNTAX",
    "toxic_from_json",
    "parse_toxic_option",
    "ForwardStats",
    "FDS_PER_CONNECTION",
    "log_json_lines",
    "HAVE_SPLICE",
    "RULE_SYNTAX",
    "RuleSpec",
    "parse_rule",
    "ResolvedRule",
    "resolve_rules",
    "open_rules",
    "Rule",
    "Target",
    "resolve_target",
    "unix_target",
    "parse_networks",
    "target_tls_context",
]
