"""Reading a ``nettools run`` file: its errors with their lines, the settings with
their commands' names and defaults."""

from __future__ import annotations

import inspect
import textwrap

import pytest
import typer

from nettools.cli import chat, echo, feeds, forward, serve, static, wschat, zmq
from nettools.net import Address
from nettools.tools.run import KINDS, ConfigError, parse_config
from nettools.tools.run.config import SourceLines
from nettools.tools.run.options import Context


def parse(text: str, base: str = "/srv"):
    return parse_config(textwrap.dedent(text), KINDS, file="f.toml", base=base)


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


# ------------------------------------------------------------------ reading


def test_a_service_gets_its_commands_defaults_and_listens_on_a_free_loopback_port():
    config = parse("""
        [services.e]
        type = "echo"
        raw = true
        max_line = "1K"
    """)
    spec = config.services["e"]
    assert spec.kind.name == "echo" and spec.line == 2
    assert spec.values["listen"] == Address("127.0.0.1", 0)
    assert spec.values["raw"] is True
    assert spec.values["max-line"] == 1024  # max_line reads as max-line
    assert spec.values["idle-timeout"] == 300.0 and spec.values["max-conns"] == 10_000


def test_services_keep_the_order_of_the_file_and_paths_are_relative_to_it(tmp_path):
    (tmp_path / "public").mkdir()
    config = parse("""
        [services.z]
        type = "static"
        root = "public"
        [services.a]
        type = "forward"
        rules = ["0:127.0.0.1:22", "unix:/tmp/x.sock:22"]
        tls-cert = "/etc/ssl/c.pem"
    """, base=str(tmp_path))
    assert list(config.services) == ["z", "a"]
    assert config.services["z"].values["root"] == str(tmp_path / "public")
    assert config.services["a"].values["tls-cert"] == "/etc/ssl/c.pem"
    assert [r.text for r in config.services["a"].values["rules"]] == [
        "0:127.0.0.1:22", "unix:/tmp/x.sock:22"]


def test_units_read_as_on_the_command_line():
    values = parse("""
        [services.c]
        type = "chat"
        idle-timeout = "off"
        slow-timeout = 2.5
        send-buffer = 4096
        bus = ["tcp://h:1", "tcp://h:2"]
    """).services["c"].values
    assert values["idle-timeout"] is None and values["slow-timeout"] == 2.5
    assert values["send-buffer"] == 4096
    assert [ep.url for ep in values["bus"]] == ["tcp://h:1", "tcp://h:2"]


def test_same_service_compares_the_settings_not_the_lines():
    one = parse('[services.e]\ntype = "echo"\n').services["e"]
    two = parse('\n\n[services.e]\ntype = "echo"\nraw = false\n').services["e"]
    three = parse('[services.e]\ntype = "echo"\nraw = true\n').services["e"]
    assert one.same_as(two) and not one.same_as(three)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(("text", "line", "message"), [
    ('[services.e]\ntype = "echo"\nraw = yes\n', 3, "invalid TOML"),
    ('[services.e]\ntype = "echo"\n\nmax-conns = 0\n', 4, "max-conns: must be at least 1"),
    ('[services.e]\ntype = "echo"\nidle-timeout = "soon"\n', 3, "invalid duration 'soon'"),
    ('[services.e]\ntype = "echo"\nlisten = "nowhere"\n', 3, "invalid address"),
    ('[services.e]\ntype = "echo"\nverbose = true\n', 3, "unknown setting 'verbose'"),
    ('[services.e]\ntype = "echo"\nraw = "true"\n', 3, "raw: expected true or false"),
    ('[services.e]\ntype = "echo"\nmax_conns = 1\nmax-conns = 2\n', 4, "given twice"),
    ('[services.e]\nraw = true\n', 1, "missing type"),
    ('[services.e]\n\ntype = "ekho"\n', 3, "unknown type 'ekho'"),
    ('[services."a b"]\ntype = "echo"\n', 1, "invalid service name"),
    ('[services.f]\ntype = "forward"\n', 1, "missing setting 'rules'"),
    ('[services.f]\ntype = "forward"\nrules = ["7000"]\n', 3, "invalid rule '7000'"),
    ('[services.f]\ntype = "forward"\nrules = []\n', 3, "at least one rule"),
    ('[services.f]\ntype = "forward"\nrules = ["0:22"]\ndeny = ["10.0.0.300/8"]\n', 4,
     "invalid network"),
    ('[services.t]\ntype = "zmq-tcp"\nlisten = "127.0.0.1:0"\n', 1, "give pub, push or sub"),
    ('[services.t]\ntype = "zmq-tcp"\nsub = "tcp://127.0.0.1:0"\n\ntopic = 1\n', 5,
     "expected an array of strings"),
    ('[services.t]\ntype = "zmq-tcp"\npub = "tcp://a:1"\npush = "tcp://a:2"\n', 4,
     "give pub or push, not both"),
    ('[services.p]\ntype = "zmq-proxy"\nproxy-type = "hub"\n', 3, "expected one of queue"),
    ('[services.p]\ntype = "zmq-proxy"\nproxy-type = "queue"\nfrontend = "udp://x"\n'
     'backend = "tcp://127.0.0.1:0"\n', 4, "unknown transport 'udp'"),
    ('[services.w]\ntype = "wschat"\n\ntls-key = "k.pem"\n', 4, "tls-key needs tls-cert"),
    ('[services.s]\ntype = "serve"\napp = "m:app"\nworkers = 4\n', 4,
     "one process runs every service"),
    ('[services.s]\ntype = "static"\nroot = "/no/such/dir"\n', 3, "not a directory"),
    ('title = "x"\n[services.e]\ntype = "echo"\n', 1, "unknown top-level key 'title'"),
    ('# nothing\n', None, "no services"),
    ('[services]\n', 1, "no services"),
    ('[services]\ne = { type = "echo", raw = 1 }\n', 2, "raw: expected true or false"),
])  # fmt: skip
def test_a_bad_file_names_the_line_and_the_reason(text, line, message):
    err = error_of(text)
    assert err.line == line, err
    assert message in err.message, err
    where = "f.toml" if line is None else f"f.toml:{line}"
    assert str(err).startswith(where + ": ")


def test_forward_faults_are_read_as_the_command_reads_them_and_bad_ones_named():
    err = error_of("""
        [services.db]
        type = "forward"
        rules = ["0:127.0.0.1:5432"]
        toxics = [{ type = "latency", latency = 100 }]
    """)
    assert err.line == 5 and "unknown key 'latency'" in err.message
    err = error_of('[services.db]\ntype = "forward"\nrules = ["0:22"]\napi = "localhost"\n')
    assert err.line == 4 and "invalid" in err.message
    err = error_of('[services.db]\ntype = "forward"\nrules = ["0:22"]\n'
                   'toxics = ["latency:rule=other"]\n')
    assert "names rule 'other'" in err.message


def test_a_missing_or_unreadable_file_is_a_config_error(tmp_path):
    from nettools.tools.run import load_config

    with pytest.raises(ConfigError, match="No such file"):
        load_config(str(tmp_path / "nope.toml"), KINDS)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'[services.e]\ntype = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(str(bad), KINDS)


def test_source_lines_find_keys_in_their_tables_and_skip_multiline_strings():
    lines = SourceLines(textwrap.dedent('''\
        note = """
        [services.fake]
        type = "x"
        """
        [services."my.web"]
        type = "static"
        services.other.type = "echo"
        [services.b]
        'quoted key' = 1
    '''))
    assert lines.find("services", "my.web") == 5
    assert lines.find("services", "my.web", "type") == 6
    assert lines.find("services", "fake") is None
    assert lines.find("services", "b", "quoted key") == 9
    assert lines.find("services", "my.web", "services", "other", "type") == 7
    assert lines.find("services", "b", "absent") == 8  # the table's line


# ------------------------------------------------------------------ the commands' names


#: The command behind each type, and the command's options a run file does not
#: take as such (``listen`` stands for --host/--port; the run file has its own ready file).
#: --metrics: a run file's services share one /metrics, 'nettools run --metrics ADDR'.
_RUN_WIDE = {"metrics": None}
COMMANDS = {
    "echo": (echo.echo, _RUN_WIDE),
    "chat": (chat.chat, _RUN_WIDE),
    "wschat": (wschat.wschat, {"host": None, "port": None, **_RUN_WIDE}),
    # A run file declares its rules itself, and reloads on its own SIGHUP.
    "forward": (forward.forward, {"rules_file": None, "toxic": "toxics", **_RUN_WIDE}),
    # One process: a service may not change the others' directory (app-dir says
    # where its app is).
    "serve": (serve.serve, {"spec": "app", "host": None, "port": None, "workers": None,
                            "chdir": None, **_RUN_WIDE}),
    "static": (static.static, {"directory": "root", **_RUN_WIDE}),
    "feeds": (feeds.serve_cmd, _RUN_WIDE),
    "zmq-proxy": (zmq.proxy, {"kind": "proxy-type", **_RUN_WIDE}),
    "zmq-tcp": (zmq.tcp, {"topics": "topic", **_RUN_WIDE}),
    "zmq-ws": (zmq.ws, {"origins": "origin", **_RUN_WIDE}),
}
#: Settings only a run file has.
RUN_ONLY = {("serve", "app-dir"), ("wschat", "listen"), ("serve", "listen"),
            ("zmq-ws", "ping-timeout")}  # fmt: skip


def _cli_options(command) -> list[tuple[str, str, object]]:
    """Each option of a command: (its setting name, its parameter, its OptionInfo).
    A list: an argument and an option may share a name (forward's RULE and --rules)."""
    found = []
    for name, param in inspect.signature(command).parameters.items():
        info = param.default
        decls = getattr(info, "param_decls", None) or ()
        longs = [d[2:].split("/")[0] for d in decls if d.startswith("--")]
        found.append((longs[0] if longs else name, name, info))
    return found


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_option_of_the_command_is_a_setting_with_the_same_default(kind):
    command, renamed = COMMANDS[kind]
    settings = KINDS[kind].settings
    ctx = Context("/")
    seen = set()
    for option, param, info in _cli_options(command):
        if option == "ready-file" or param in renamed and renamed[param] is None:
            continue
        setting = renamed.get(param, option)
        assert setting in settings, f"{kind}: --{option} has no setting {setting!r}"
        seen.add(setting)
        spec = settings[setting]
        if spec.required or isinstance(info, typer.models.ArgumentInfo):
            continue
        cli_default = info.default
        parser = getattr(info, "parser", None)
        if parser is not None and isinstance(cli_default, str):
            cli_default = parser(cli_default)
        if hasattr(cli_default, "value"):  # an Enum
            cli_default = cli_default.value
        ours = None if spec.default is None else spec.read(spec.default, ctx)
        if isinstance(ours, tuple) or cli_default == []:
            ours, cli_default = list(ours or ()), list(cli_default or ())
        assert ours == cli_default, f"{kind}: {setting} defaults to {ours!r}, the command to " \
                                    f"{cli_default!r}"
    extra = set(settings) - seen - {s for k, s in RUN_ONLY if k == kind}
    assert not extra, f"{kind}: settings no command option has: {extra}"
