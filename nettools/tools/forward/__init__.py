"""Port forwarding: relay every connection on a listening socket to a target.

Each accepted connection gets a connection to its rule's target and two
greenthreads, one per direction; half-closes are passed on, a reset on one side
closes both, and plain TCP or unix-socket bytes move with ``os.splice``.  The
package, by seam:

* ``rules``: the rule syntax, targets and their look-up, listening, allow/deny;
* ``relay``: one connection's two directions (the splice and copy pumps, the
  half-close rules, TLS ones included);
* ``tls``: the TLS contexts a relay needs on either side;
* ``forwarder``: ``Forwarder`` -- a ``net.Server`` per rule, each connection's
  admission, connect, idle watchdog and log line;
* ``errors``: how failures are worded.

Usable without the CLI::

    from nettools.tools.forward import Forwarder, open_rules
    fwd = Forwarder(open_rules(["127.0.0.1:0:127.0.0.1:22"]), idle_timeout=300).start()
    print(fwd.addresses)
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
