#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["pyyaml>=6"]
# ///
"""Write the docs blocks from the compose files, or check them; check every relative doc link.

    python3 scripts/docs.py [PROJECT]            # rewrite the stale docs blocks
    python3 scripts/docs.py --check [PROJECT]    # report them (and the rest), exit 1
    uv run scripts/docs.py --check               # the same, bringing its own PyYAML

The pages that list services, ports, volumes, networks, flows or resources
hold template-owned blocks, ``<!-- <<NAME>> -->`` to ``<!-- <</NAME>> -->``
(``BLOCKS`` below says which). Their bodies are generated from the compose
files, merged the way Compose merges them: mappings key by key, sequences
appended, ``ports``/``volumes`` unique by their key, ``command``,
``entrypoint`` and ``healthcheck.test`` replaced, and ``!reset``/``!override``.
So they show every service, the user's own included; a service's part in the
flows is its label ``org.stackplate.role`` (``ROLES``), else "other". Text
outside the blocks is the user's and never touched.

``--check`` prints one line per problem (a stale or missing block with its
first differing line, production ports of services that must not publish,
broken relative links) and exits 1, else prints ``docs match the compose
files``. Tools import this file: ``problems(project)`` returns those lines and
``write(project)`` rewrites the blocks and returns the files it changed
(``stackplate check`` and ``stackplate docs`` do). The marker rules are
``scripts/lib/stackplate_markers.py``, a copy of the template's own module.
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("scripts/docs.py needs PyYAML: run `uv run scripts/docs.py` or `pip install pyyaml`")


def _load_markers() -> ModuleType:
    """scripts/lib/stackplate_markers.py beside this file, under a name of its own (no sys.path)."""
    path = Path(__file__).resolve().parent / "lib" / "stackplate_markers.py"
    name = f"_stackplate_markers_{abs(hash(str(path)))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - a broken checkout
        sys.exit(f"scripts/docs.py: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


markers = _load_markers()

OVERVIEW = "docs/architecture/overview.md"
README = "README.md"
DEPLOYMENT = "docs/operations/deployment.md"
BASE = "docker-compose.yml"
DEVELOPMENT = "docker-compose.development.yml"
PRODUCTION = "docker-compose.production.yml"
ANSWERS = ".copier-answers.yml"
FIX = "run `stackplate docs` or `python3 scripts/docs.py`"
ROLE_LABEL = "org.stackplate.role"
# The kinds that may publish ports in production, as the docs call them.
PUBLIC_KINDS = {"react-vite": "frontend", "fastapi": "API"}
PUBLIC_ROLES = {"frontend", "api"}


# ------------------------------------------------------------ compose files


class _Override:
    """A value tagged ``!override``: it replaces what the earlier files say."""

    def __init__(self, value: Any) -> None:
        self.value = value


_RESET = object()  # a value tagged ``!reset``: the key is removed


class _ComposeLoader(yaml.SafeLoader):
    """YAML as Compose reads it: the safe subset plus the ``!reset`` and ``!override`` tags."""


def _construct(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_ComposeLoader.add_constructor("!reset", lambda loader, node: _RESET)
_ComposeLoader.add_constructor("!override", lambda loader, node: _Override(_construct(loader, node)))


def _plain(value: Any) -> Any:
    """``value`` without the merge tags (they mean nothing in the first file)."""
    if isinstance(value, _Override):
        return _plain(value.value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not _RESET}
    if isinstance(value, list):
        return [_plain(item) for item in value if item is not _RESET]
    return value


def _port_key(entry: Any) -> tuple[str, str, str, str]:
    port = _ports([entry])
    return port[0] if port else ("", "", str(entry), "tcp")


def _mount_target(entry: Any) -> str:
    if isinstance(entry, dict):
        return str(entry.get("target", ""))
    parts = str(entry).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _entry_source(entry: Any) -> str:
    return str(entry.get("source", "")) if isinstance(entry, dict) else str(entry)


# Sequences whose entries are unique by a key: a later entry replaces an earlier one.
_UNIQUE: dict[str, Callable[[Any], Any]] = {
    "ports": _port_key,
    "volumes": _mount_target,
    "secrets": _entry_source,
    "configs": _entry_source,
}
# Sequences the later file replaces instead of appending to.
_REPLACED = {"command", "entrypoint", "test"}


def merge(base: Any, override: Any, key: str = "") -> Any:
    """``override`` merged into ``base`` by the Compose merge rules."""
    if isinstance(override, _Override):
        return _plain(override.value)
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            if value is _RESET:
                merged.pop(name, None)
            elif name in merged:
                merged[name] = merge(merged[name], value, name)
            else:
                merged[name] = _plain(value)
        return merged
    if isinstance(base, list) and isinstance(override, list) and key not in _REPLACED:
        unique = _UNIQUE.get(key)
        entries = [*base, *_plain(override)]
        if unique is None:
            return entries
        return list({unique(entry): entry for entry in entries}.values())
    return _plain(override)


class Stack:
    """The three compose files, and the development and production combinations."""

    def __init__(self, files: dict[str, dict[str, Any]]) -> None:
        self.files = files
        base = _plain(files[BASE])
        self.development = merge(base, files[DEVELOPMENT])
        self.production = merge(base, files[PRODUCTION])

    def services(self, combination: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        if combination is not None:
            return {name: spec or {} for name, spec in (combination.get("services") or {}).items()}
        return {**self.services(self.development), **self.services(self.production)}

    def declared(self, section: str) -> dict[str, Any]:
        """Top-level ``volumes`` or ``networks`` of both combinations, by name."""
        found: dict[str, Any] = {}
        for combination in (self.development, self.production):
            for name, spec in (combination.get(section) or {}).items():
                found[name] = merge(found.get(name) or {}, spec or {})
        return found

    def defined_in(self, name: str, section: str = "services") -> list[str]:
        """The files that mention service (or volume, network) ``name``."""
        return [file for file, data in self.files.items() if name in (data.get(section) or {})]

    def setting_files(self, service: str, key: str, files: Iterable[str]) -> str:
        """Those of ``files`` that set ``key`` of ``service``, for messages."""
        setting = [f for f in files if key in ((self.files[f].get("services") or {}).get(service) or {})]
        return " + ".join(setting or list(files))


def load_stack(project: Path) -> tuple[Stack | None, list[str]]:
    """The compose files of ``project``, or the problems that stop reading them."""
    files: dict[str, dict[str, Any]] = {}
    found = []
    for name in (BASE, DEVELOPMENT, PRODUCTION):
        path = project / name
        if not path.is_file():
            found.append(f"{name}: missing")
            continue
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_ComposeLoader)
        except yaml.YAMLError as error:
            found.append(f"{name}: not valid YAML: {' '.join(str(error).split())}")
            continue
        if data is not None and not isinstance(data, dict):
            found.append(f"{name}: not a compose file (a mapping at the top)")
            continue
        files[name] = data or {}
    return (Stack(files) if not found else None), found


# -------------------------------------------------------------------- ports


def _ports(entries: Iterable[Any] | None) -> list[tuple[str, str, str, str]]:
    """Port entries as (host_ip, published, target, protocol); published "" when not published."""
    ports = []
    for entry in entries or []:
        if isinstance(entry, dict):
            ports.append(
                (
                    str(entry.get("host_ip", "")),
                    str(entry.get("published", "")),
                    str(entry.get("target", "")),
                    str(entry.get("protocol", "tcp")),
                )
            )
            continue
        text, _, protocol = str(entry).partition("/")
        host_ip = ""
        if text.startswith("["):  # [::1]:8080:80
            host_ip, _, text = text[1:].partition("]:")
        parts = text.split(":")
        if len(parts) == 3:
            host_ip = parts.pop(0)
        published = parts[0] if len(parts) == 2 else ""
        ports.append((host_ip, published, parts[-1], protocol or "tcp"))
    return ports


def _mapping(port: tuple[str, str, str, str]) -> str:
    host_ip, published, target, protocol = port
    text = f"{published or 'random'}:{target}"
    if host_ip:
        text = f"{host_ip}:{text}"
    return text if protocol == "tcp" else f"{text}/{protocol}"


def _mappings(ports: list[tuple[str, str, str, str]]) -> list[str]:
    """The ports as ``[address:]host:container`` mappings, by host port, then container port."""

    def number(text: str) -> int:
        return int(text) if text.isdigit() else 1 << 30

    ordered = sorted(set(ports), key=lambda port: (number(port[1]), number(port[2]), port))
    return [_mapping(port) for port in ordered]


def _sorted(values: Iterable[str]) -> list[str]:
    def key(value: str) -> tuple[int, str]:
        digits = re.match(r"\d+", value)
        return (int(digits.group()) if digits else 1 << 30, value)

    return sorted(set(values), key=key)


def _show(values: list[str]) -> str:
    return ", ".join(values) if values else "-"


# -------------------------------------------------------------------- model

# The roles of label org.stackplate.role, in the order the diagrams draw them:
# (heading of their row, one service's word, protocol words for the port table).
ROLES: dict[str, tuple[str, str, str]] = {
    "frontend": ("Frontends", "frontend", "HTTP (static app, /api/ proxy)"),
    "api": ("APIs", "API", "HTTP (JSON API, SSE)"),
    "worker": ("Workers", "worker", "AMQP client (outbound only)"),
    "database": ("Backing services", "database", "PostgreSQL (TCP)"),
    "cache": ("Backing services", "cache", "Redis RESP (TCP)"),
    "broker": ("Backing services", "message broker", "AMQP; HTTP (management UI)"),
    "dev-tool": ("Development tools", "development tool", "HTTP (web UI)"),
    "other": ("Other services", "other", "-"),
}
# What the template's named volumes hold; a volume of the user's shows "-".
HOLDS = {
    "exports-data": "export files, one folder per API",
    "postgres-data": "every database",
    "redis-data": "the append-only file: cache entries, rate limits, refresh tokens",
    "rabbitmq-data": "durable queues and messages not yet consumed",
}


def _ident(prefix: str, name: str) -> str:
    """A Mermaid node id for a compose name (which may hold dashes and dots)."""
    return prefix + re.sub(r"\W", "_", name)


def _labels(spec: dict[str, Any]) -> dict[str, str]:
    labels = spec.get("labels") or {}
    if isinstance(labels, list):
        return dict(str(item).partition("=")[::2] for item in labels)
    return {str(key): str(value) for key, value in labels.items()}


def _names(value: Any) -> list[str]:
    """The keys of a mapping, or the items of a list (``networks``, ``depends_on``)."""
    if isinstance(value, dict):
        return [str(key) for key in value]
    return [str(item) for item in value or []]


@dataclass
class Service:
    """One compose service as the docs show it, from both combinations."""

    name: str
    role: str
    runs_in: list[str]
    source: str  # "image postgres:16", "build ./services/api" or "-"
    development: list[tuple[str, str, str, str]]  # ports, as _ports returns them
    production: list[tuple[str, str, str, str]]
    internal: list[str]
    networks: list[str]
    depends_on: list[str]
    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # (source, target, combination)
    deploy: dict[str, Any] = field(default_factory=dict)
    restart: str = "-"

    @property
    def ident(self) -> str:
        return _ident("svc_", self.name)

    @property
    def ports_words(self) -> str:
        ports = self.internal
        if not ports:
            return "no port"
        return ("port " if len(ports) == 1 else "ports ") + ", ".join(ports)

    @property
    def only(self) -> str:
        """ "development only" / "production only", or "" for a service of both."""
        return f"{self.runs_in[0]} only" if len(self.runs_in) == 1 else ""


def _build_context(spec: dict[str, Any]) -> Any:
    """The folder a service is built from (``build: DIR`` or ``build: {context: DIR}``), else None."""
    build = spec.get("build")
    return build.get("context") if isinstance(build, dict) else build


def _image_or_build(spec: dict[str, Any]) -> str:
    """Where a service comes from: its build folder when it has one (an ``image:`` beside
    ``build:`` only names what the build is tagged), else its image."""
    context = _build_context(spec)
    if context:
        return f"build {context}"
    return f"image {spec['image']}" if spec.get("image") else "-"


def _mounts(spec: dict[str, Any], combination: str) -> list[tuple[str, str, str]]:
    """(source, target with " (read-only)" when so, combination) of each mount with a source."""
    found = []
    for entry in spec.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = str(entry.get("source", "")), f"`{entry.get('target', '')}`"
            read_only = bool(entry.get("read_only"))
        else:
            parts = str(entry).split(":")
            if len(parts) == 1:
                continue  # an anonymous volume: nothing of the project's
            source, target = parts[0], f"`{parts[1]}`"
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        found.append((source, target + (" (read-only)" if read_only else ""), combination))
    return found


def service_model(stack: Stack) -> list[Service]:
    """Every service of either combination, in the order the files name them."""
    development, production = stack.services(stack.development), stack.services(stack.production)
    found = []
    for name in stack.services():
        dev, prod = development.get(name), production.get(name)
        spec = prod if prod is not None else dev or {}
        combined = [c for c, s in (("development", dev), ("production", prod)) if s is not None]
        role = _labels(dev or {}).get(ROLE_LABEL) or _labels(prod or {}).get(ROLE_LABEL) or "other"
        dev_ports, prod_ports = _ports((dev or {}).get("ports")), _ports((prod or {}).get("ports"))
        exposed = [*((dev or {}).get("expose") or []), *((prod or {}).get("expose") or [])]
        internal = {str(port).split("/")[0] for port in exposed} | {p[2] for p in dev_ports + prod_ports}
        networks = list(dict.fromkeys([*_names((dev or {}).get("networks")), *_names(spec.get("networks"))]))
        depends = list(
            dict.fromkeys([*_names((dev or {}).get("depends_on")), *_names(spec.get("depends_on"))])
        )
        mounts = _mounts(dev or {}, "development") + _mounts(prod or {}, "production")
        found.append(
            Service(
                name=name,
                role=role if role in ROLES else "other",
                runs_in=combined,
                source=_image_or_build(spec),
                development=dev_ports,
                production=prod_ports,
                internal=_sorted(internal),
                networks=networks or ["default"],
                depends_on=depends,
                mounts=mounts,
                deploy=(prod or {}).get("deploy") or {},
                restart=str((prod or {}).get("restart") or "-"),
            )
        )
    return found


def _by_role(services: list[Service]) -> list[tuple[str, list[Service]]]:
    """The services grouped under their row headings, in ROLES order."""
    rows: dict[str, list[Service]] = {}
    for role, (heading, _, _) in ROLES.items():
        for service in services:
            if service.role == role:
                rows.setdefault(heading, []).append(service)
    return list(rows.items())


def _network_words(stack: Stack) -> str:
    parts = []
    for name, spec in stack.declared("networks").items():
        subnets, _ = _subnets(spec or {})
        parts.append(f"{name} ({', '.join(subnets) if subnets else 'a subnet Docker picks'})")
    return "; ".join(parts) or "default (Compose's own)"


def _subnets(spec: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The subnets of a network and its gateways (given, else the first address of each subnet)."""
    subnets, gateways = [], []
    for config in (spec.get("ipam") or {}).get("config") or []:
        if not isinstance(config, dict) or not config.get("subnet"):
            continue
        subnet = str(config["subnet"])
        subnets.append(subnet)
        gateway = config.get("gateway")
        if not gateway:
            try:
                gateway = next(ipaddress.ip_network(subnet, strict=False).hosts())
            except (ValueError, StopIteration):
                gateway = "?"
        gateways.append(str(gateway))
    return _sorted(subnets), _sorted(gateways)


# ---------------------------------------------------------------- diagrams


def _box(lines: list[str], height: int) -> list[str]:
    width = max(len(line) for line in lines) + 2
    lines = lines + [""] * (height - len(lines))
    return [f"┌{'─' * width}┐", *(f"│ {line.ljust(width - 2)} │" for line in lines), f"└{'─' * width}┘"]


def _box_row(services: list[Service]) -> list[str]:
    contents = [[s.name, s.source, s.ports_words, *([s.only] if s.only else [])] for s in services]
    height = max(len(lines) for lines in contents)
    boxes = [_box(lines, height) for lines in contents]
    return ["   ".join(parts) for parts in zip(*boxes, strict=True)]


def ascii_diagram(stack: Stack, services: list[Service]) -> list[str]:
    published = [
        f"{s.name} on {', '.join(p[1] for p in s.development if p[1])}"
        for s in services
        if s.role in PUBLIC_ROLES and any(p[1] for p in s.development)
    ]
    lines = [
        "```text",
        "Browser",
        f"    │ HTTP: {', '.join(published) or 'no published frontend or API'}",
        "    ▼",
    ]
    lines.append(f"── network {_network_words(stack)} ──")
    groups = _by_role(services)
    for index, (heading, members) in enumerate(groups):
        roles = sorted({ROLES[s.role][1] for s in members})
        lines.append(f"{heading} ({', '.join(roles)})" if heading == "Backing services" else heading)
        lines.extend(_box_row(members))
        if index + 1 < len(groups):
            uses = [f"{s.name} uses {', '.join(s.depends_on)}" for s in members if s.depends_on]
            lines.append(f"    │ {'; '.join(uses)}" if uses else "    │")
            lines.append("    ▼")
    return [*lines, "```"]


def _node(service: Service) -> str:
    words = ", ".join(w for w in (ROLES[service.role][1], service.ports_words) if w)
    label = f"{service.name}<br/>{words}<br/>{service.source}" + (
        f"<br/>{service.only}" if service.only else ""
    )
    shape = ('[("', '")]') if service.role in ("database", "cache", "broker") else ('["', '"]')
    return f"    {service.ident}{shape[0]}{label}{shape[1]}"


def mermaid_diagram(stack: Stack, services: list[Service]) -> list[str]:
    lines = ["```mermaid", "flowchart TB", '  browser(["Browser"])']
    declared = stack.declared("networks")
    for network in list(dict.fromkeys([*declared, *(s.networks[0] for s in services)])):
        members = [s for s in services if s.networks[0] == network]
        if not members:
            continue
        subnets, _ = _subnets(declared.get(network) or {})
        title = f"network {network} ({', '.join(subnets) if subnets else 'a subnet Docker picks'})"
        lines.append(f'  subgraph {_ident("net_", network)}["{title}"]')
        lines.extend(_node(s) for s in members)
        lines.append("  end")
    known = {s.name: s for s in services}
    for service in services:
        for port in (p for p in service.development if p[1]):
            if service.role in PUBLIC_ROLES:
                arrow = "-->" if service.role == "frontend" else "-.->"
                lines.append(f'  browser {arrow}|"HTTP :{port[1]}"| {service.ident}')
        for used in service.depends_on:
            if used in known:
                arrow = "-.->" if service.only == "development only" else "-->"
                lines.append(f'  {service.ident} {arrow}|"{ROLES[known[used].role][1]}"| {known[used].ident}')
    return [*lines, "```"]


# ------------------------------------------------------------------ tables


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(row) for row in rows)]


def _external(ports: list[tuple[str, str, str, str]]) -> str:
    published = _sorted(p[1] for p in ports if p[1]) or _sorted("random" for _ in ports)
    if not published:
        return "-"
    loopback = all(p[0] in ("127.0.0.1", "::1") for p in ports)
    return ", ".join(published) + (" (127.0.0.1 only)" if loopback else "")


def port_table(stack: Stack, services: list[Service]) -> list[str]:
    return _table(
        ["Service", "Internal", "External", "Protocol", "Development", "Production"],
        (
            [
                s.name,
                _show(s.internal),
                _external(s.development),
                ROLES[s.role][2],
                _show(_mappings(s.development)),
                _show(_mappings(s.production)),
            ]
            for s in services
        ),
    )


def network_table(stack: Stack, services: list[Service]) -> list[str]:
    rows = []
    for name, spec in stack.declared("networks").items():
        subnets, gateways = _subnets(spec or {})
        members = [s.name for s in services if name in s.networks]
        rows.append(
            [
                name,
                str((spec or {}).get("driver") or "bridge"),
                _show(subnets) if subnets else "- (Docker picks a free one)",
                _show(gateways) if subnets else "- (the subnet's first address)",
                _show(members),
            ]
        )
    if any("default" in s.networks for s in services) and "default" not in stack.declared("networks"):
        members = [s.name for s in services if "default" in s.networks]
        rows.append(["default", "bridge", "- (Compose makes it)", "-", _show(members)])
    return _table(["Network", "Driver", "Subnet", "Gateway", "Services"], rows)


def name_table(stack: Stack, services: list[Service]) -> list[str]:
    return _table(
        ["Service", "DNS name", "Networks", "Runs in"],
        ([s.name, f"`{s.name}`", ", ".join(s.networks), ", ".join(s.runs_in)] for s in services),
    )


def volume_table(stack: Stack, services: list[Service]) -> list[str]:
    rows = []
    for name in stack.declared("volumes"):
        users = [(s.name, target) for s in services for source, target, _ in s.mounts if source == name]
        rows.append(
            [
                name,
                _show(list(dict.fromkeys(user for user, _ in users))),
                _show(list(dict.fromkeys(target.strip("`") for _, target in users))),
                HOLDS.get(name, "-"),
            ]
        )
    return _table(["Volume", "Mounted by", "Mount path", "Holds"], rows)


def bind_mount_table(stack: Stack, services: list[Service]) -> list[str]:
    named = set(stack.declared("volumes"))
    rows: dict[tuple[str, str, str], list[str]] = {}
    for service in services:
        for source, target, combination in service.mounts:
            if source and source not in named:
                rows.setdefault((f"`{source}`", service.name, target), []).append(combination)
    return _table(
        ["Host path", "Service", "Container path", "Runs in"],
        ([*key, ", ".join(dict.fromkeys(runs))] for key, runs in rows.items()),
    )


def flow_table(stack: Stack, services: list[Service]) -> list[str]:
    known = {s.name: s for s in services}
    rows = []
    for service in services:
        if service.role in PUBLIC_ROLES and any(p[1] for p in service.production):
            rows.append(["browser", service.name, f"HTTP, {ROLES[service.role][1]}", "production"])
        for used in service.depends_on:
            if used in known:
                role = ROLES[known[used].role][1]
                rows.append([service.name, used, role, ", ".join(service.runs_in)])
    return _table(["From", "To", "As", "Runs in"], rows)


def _limits(deploy: dict[str, Any]) -> dict[str, str]:
    limits = (deploy.get("resources") or {}).get("limits") or {}
    return {"cpus": str(limits.get("cpus", "-")), "memory": str(limits.get("memory", "-"))}


def resource_table(stack: Stack, services: list[Service]) -> list[str]:
    production = stack.services(stack.production)
    rows = []
    for service in services:
        if "production" not in service.runs_in:
            continue
        replicas = service.deploy.get("replicas", production[service.name].get("scale", 1))
        limits = _limits(service.deploy)
        rows.append([service.name, str(replicas), limits["cpus"], limits["memory"]])
    return _table(["Service", "Replicas", "CPU limit", "Memory limit"], rows)


def summary(stack: Stack, services: list[Service]) -> list[str]:
    counts: dict[str, int] = {}
    for service in services:
        counts[ROLES[service.role][1]] = counts.get(ROLES[service.role][1], 0) + 1
    words = ", ".join(
        f"{count} {word}{'s' if count != 1 and word != 'other' else ''}" for word, count in counts.items()
    )
    return [f"The stack: {len(services)} compose services ({words}), on the network {_network_words(stack)}."]


def _page_link(project: Path, page: str, service: Service) -> str:
    """The service's name, linked to its docs page when the project has one."""
    if (project / "docs/services" / f"{service.name}.md").is_file():
        prefix = "docs/services/" if page == README else "../services/"
        return f"[{service.name}]({prefix}{service.name}.md)"
    return service.name


def service_table(project: Path, stack: Stack, services: list[Service]) -> list[str]:
    return _table(
        ["Service", "Role", "Image or build", "Development ports", "Runs in"],
        (
            [
                _page_link(project, README, s),
                ROLES[s.role][1],
                s.source.removeprefix("image ").removeprefix("build "),
                _show(_mappings(s.development)),
                ", ".join(s.runs_in),
            ]
            for s in services
        ),
    )


def deployment_table(project: Path, stack: Stack, services: list[Service]) -> list[str]:
    rows = []
    for service in services:
        if "production" not in service.runs_in:
            continue
        limits = _limits(service.deploy)
        rows.append(
            [
                f"{_page_link(project, DEPLOYMENT, service)} ({ROLES[service.role][1]})",
                ", ".join(f"`{mapping}`" for mapping in _mappings(service.production)) or "-",
                str(service.deploy.get("replicas", 1)),
                f"{limits['cpus']} CPU, {limits['memory']}"
                if limits != {"cpus": "-", "memory": "-"}
                else "-",
                service.restart,
            ]
        )
    return _table(["Service", "Published", "Replicas", "Limits", "Restart"], rows)


def _in_project(make: Callable[[Stack, list[Service]], list[str]]) -> Callable[..., list[str]]:
    return lambda project, stack, services: make(stack, services)


# Every docs block: file -> block name -> what writes its body.
BLOCKS: dict[str, dict[str, Callable[[Path, Stack, list[Service]], list[str]]]] = {
    OVERVIEW: {
        "SUMMARY": _in_project(summary),
        "DIAGRAMS": _in_project(lambda st, sv: [*ascii_diagram(st, sv), "", *mermaid_diagram(st, sv)]),
        "NETWORKS": _in_project(network_table),
        "SERVICE_NAMES": _in_project(name_table),
        "PORTS": _in_project(port_table),
        "FLOWS": _in_project(flow_table),
        "VOLUMES": _in_project(volume_table),
        "BIND_MOUNTS": _in_project(bind_mount_table),
        "RESOURCES": _in_project(resource_table),
    },
    README: {"SERVICES": service_table},
    DEPLOYMENT: {"PRODUCTION": deployment_table},
}
# The pages that must exist; the others may be deleted by the user.
REQUIRED = {OVERVIEW}


def _padded(lines: list[str]) -> str:
    """The body text: a blank line, the lines, a blank line (as ``splitlines`` reads it back)."""
    return "\n" + "\n".join(lines) + "\n\n"


def generated(project: Path, stack: Stack) -> dict[str, dict[str, str]]:
    """The body of every docs block, by file and block name.

    A blank line opens and closes each body: Markdown renderers then read the
    table or code block apart from the HTML comments of the markers.
    """
    services = service_model(stack)
    return {
        page: {name: _padded(make(project, stack, services)) for name, make in blocks.items()}
        for page, blocks in BLOCKS.items()
    }


# -------------------------------------------------------- check and write


class DocsError(Exception):
    """The blocks cannot be written: unreadable compose files or broken markers (one line)."""


def _blocks_of(project: Path, page: str) -> dict[str, Any] | None:
    """The page's blocks (None when the page is absent); MarkerError when its markers break."""
    path = project / page
    if not path.is_file():
        return None
    return markers.parse(path.read_text(encoding="utf-8"), page)


def stale_problems(project: Path, stack: Stack) -> list[str]:
    """One line per docs block that differs from a fresh generation, or is missing."""
    found = []
    for page, bodies in generated(project, stack).items():
        try:
            blocks = _blocks_of(project, page)
        except markers.MarkerError as error:
            found.append(str(error))
            continue
        if blocks is None:
            if page in REQUIRED:
                found.append(f"{page}: missing (it documents the compose files); {FIX}")
            continue
        lines = (project / page).read_text(encoding="utf-8").splitlines()
        for name, body in bodies.items():
            if name not in blocks:
                found.append(f"{page}: has no block {name} (<!-- <<{name}>> --> … <!-- <</{name}>> -->)")
                continue
            have, want = blocks[name].body(lines), body.splitlines()
            if have != want:
                missing = _missing_services(stack, "\n".join(have), body)
                found.append(_first_difference(page, name, blocks[name].begin, have, want, missing))
    return found


def _missing_services(stack: Stack, have: str, want: str) -> list[str]:
    """The services a fresh generation names and the block does not: the usual cause."""

    def named(service: str, text: str) -> bool:
        return re.search(rf"(?<![\w.-]){re.escape(service)}(?![\w.-])", text) is not None

    return [service for service in stack.services() if named(service, want) and not named(service, have)]


def _first_difference(
    page: str, name: str, begin: int, have: list[str], want: list[str], missing: list[str]
) -> str:
    offset = next(i for i in range(max(len(have), len(want))) if have[i : i + 1] != want[i : i + 1])
    found = have[offset] if offset < len(have) else "(end of block)"
    expected = want[offset] if offset < len(want) else "(end of block)"
    absent = f" (it does not show {', '.join(missing)})" if missing else ""
    return (
        f"{page}:{begin + 2 + offset}: block {name} differs from what the compose files generate{absent}: "
        f"found {found.strip()!r}, expected {expected.strip()!r}; {FIX}"
    )


def write(project: Path) -> list[str]:
    """Rewrite every docs block from the compose files; the pages changed.

    Every page is parsed before any is written, so a broken marker (a
    MarkerError) or an unreadable compose file (a DocsError) leaves all of
    them byte for byte as they were.
    """
    project = Path(project)
    stack, found = load_stack(project)
    if stack is None:
        raise DocsError(f"cannot read the compose files: {found[0]}")
    bodies = generated(project, stack)
    present = {page: _blocks_of(project, page) for page in bodies}
    changed = []
    for page, blocks in present.items():
        if blocks is None:
            continue
        wanted = {name: body for name, body in bodies[page].items() if name in blocks}
        if markers.rewrite_file(project / page, wanted, page):
            changed.append(page)
    return changed


def service_kinds(project: Path, services: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Each service's kind: from the answers file, else from its build context."""
    kinds: dict[str, str] = {}
    answers_file = project / ANSWERS
    if answers_file.is_file():
        try:
            answers = yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            answers = {}
        for entry in answers.get("services") or [] if isinstance(answers, dict) else []:
            if isinstance(entry, dict) and entry.get("name"):
                kinds[str(entry["name"])] = str(entry.get("kind", ""))
    for name, spec in services.items():
        if name in kinds:
            continue
        context = _build_context(spec)
        if not context:
            continue
        folder = project / str(context)
        package = folder / "package.json"
        if (folder / "pyproject.toml").is_file():
            kinds[name] = "fastapi"
        elif package.is_file():
            kinds[name] = "react-vite" if "vite" in package.read_text(encoding="utf-8") else "node-worker"
    return kinds


def production_port_problems(project: Path, stack: Stack) -> list[str]:
    """Production publishes ports only for frontend (react-vite) and API (fastapi) services.

    A service is one by its label org.stackplate.role (frontend, api), or by
    its kind in the answers or its build context (projects of older templates).
    """
    production = stack.services(stack.production)
    kinds = service_kinds(project, production)
    found = []
    for name, spec in production.items():
        published = [port for port in _ports(spec.get("ports")) if port[1]]
        kind = kinds.get(name)
        role = _labels(spec).get(ROLE_LABEL)
        if not published or kind in PUBLIC_KINDS or role in PUBLIC_ROLES:
            continue
        what = f"a {kind} service" if kind else "neither a frontend nor an API"
        found.append(
            f"{stack.setting_files(name, 'ports', (BASE, PRODUCTION))}: production publishes "
            f"{_show(_sorted(map(_mapping, published)))} for {name}, which is {what}; only frontend "
            "(react-vite) and API (fastapi) services may publish ports in production"
        )
    return found


_CODE = re.compile(r"^```.*?^```[ \t]*$|`[^`\n]*`", re.DOTALL | re.MULTILINE)
_INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*(<[^>]*>|[^)\s]+)")
_REFERENCE_LINK = re.compile(r"^[ ]{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.MULTILINE)
# A URL scheme (http:, https:, mailto:, ...) or a network path (//host): not a file of the project.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:|//")


def markdown_files(project: Path) -> list[Path]:
    """Every markdown file under docs/, and README.md."""
    files = sorted((project / "docs").rglob("*.md")) if (project / "docs").is_dir() else []
    return [*files, project / "README.md"] if (project / "README.md").is_file() else files


def relative_links(text: str) -> list[str]:
    """The relative links of a markdown text, each once (not those in code, to URLs or to #anchors)."""
    text = _CODE.sub("", text)
    links = [
        match.group(1).strip("<>")
        for regex in (_INLINE_LINK, _REFERENCE_LINK)
        for match in regex.finditer(text)
    ]
    return [
        link for link in dict.fromkeys(links) if link and not link.startswith("#") and not _SCHEME.match(link)
    ]


def link_target(project: Path, document: Path, link: str) -> Path:
    """The file a relative link of ``document`` leads to (without #anchor or ?query)."""
    target = unquote(re.split(r"[#?]", link, maxsplit=1)[0])
    return project / target.lstrip("/") if target.startswith("/") else document.parent / target


def link_problems(project: Path) -> list[str]:
    """Every relative link of the markdown files leads to an existing file."""
    found = []
    for path in markdown_files(project):
        for link in relative_links(path.read_text(encoding="utf-8")):
            target = link_target(project, path, link)
            if target.exists():
                continue
            try:
                where = target.resolve().relative_to(project.resolve()).as_posix()
            except ValueError:
                where = str(target)
            found.append(
                f"{path.relative_to(project).as_posix()}: link {link} leads to {where}, which does not exist"
            )
    return found


# --------------------------------------------------------------------- main


def problems(project: Path) -> list[str]:
    """Every mismatch between the docs and the compose files of ``project``, one line each."""
    project = Path(project)
    stack, found = load_stack(project)
    if stack is not None:
        found += production_port_problems(project, stack)
        found += stale_problems(project, stack)
    return found + link_problems(project)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "project",
        nargs="?",
        type=Path,
        default=Path(__file__).resolve().parent.parent,
        help="the project folder (default: the one this script is in)",
    )
    parser.add_argument(
        "--check", action="store_true", help="only report what is stale; exit 1 if anything is"
    )
    parser.add_argument(
        "--lenient",
        action="store_true",
        help="on a project that cannot be read, warn and exit 0 (Copier's tasks: stackplate check tells)",
    )
    arguments = parser.parse_args(argv)
    if arguments.check:
        found = problems(arguments.project)
        for line in found:
            print(line)
        if not found:
            print("docs match the compose files")
        return 1 if found else 0
    try:
        changed = write(arguments.project)
    except (DocsError, markers.MarkerError) as error:
        print(f"scripts/docs.py: {error}; nothing written", file=sys.stderr)
        return 0 if arguments.lenient else 1
    for page in changed:
        print(f"wrote {page}")
    if not changed:
        print("docs blocks are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
