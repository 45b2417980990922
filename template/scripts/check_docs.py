#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["pyyaml>=6"]
# ///
"""Check docs/architecture/overview.md against the compose files, and every relative doc link.

    uv run scripts/check_docs.py        # brings its own PyYAML
    python3 scripts/check_docs.py       # with PyYAML installed

The overview marks what is checked with HTML comments, ``<!-- check:NAME -->``
to ``<!-- /check:NAME -->``: ``diagram`` (the ASCII and the Mermaid diagram),
``ports``, ``volumes``, ``networks`` and ``resources`` (tables). The compose
files are merged the way Compose merges them: mappings key by key, sequences
appended, ``ports``/``volumes`` unique by their key, ``command``,
``entrypoint`` and ``healthcheck.test`` replaced, and ``!reset``/``!override``.

Prints one line per problem, naming the file, and exits 1; else prints
``docs match the compose files``. ``problems(project)`` returns the lines, for
tools that import this file (``stackplate check`` does).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

try:
    import yaml
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.exit("scripts/check_docs.py needs PyYAML: run `uv run scripts/check_docs.py` or `pip install pyyaml`")

OVERVIEW = "docs/architecture/overview.md"
BASE = "docker-compose.yml"
DEVELOPMENT = "docker-compose.development.yml"
PRODUCTION = "docker-compose.production.yml"
ANSWERS = ".copier-answers.yml"
# The kinds that may publish ports in production, as the docs call them.
PUBLIC_KINDS = {"react-vite": "frontend", "fastapi": "API"}

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


def _source(entry: Any) -> str:
    return str(entry.get("source", "")) if isinstance(entry, dict) else str(entry)


# Sequences whose entries are unique by a key: a later entry replaces an earlier one.
_UNIQUE: dict[str, Callable[[Any], Any]] = {
    "ports": _port_key,
    "volumes": _mount_target,
    "secrets": _source,
    "configs": _source,
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


def _sorted(values: Iterable[str]) -> list[str]:
    def key(value: str) -> tuple[int, str]:
        digits = re.match(r"\d+", value)
        return (int(digits.group()) if digits else 1 << 30, value)

    return sorted(set(values), key=key)


def _show(values: list[str]) -> str:
    return ", ".join(values) if values else "-"


# ---------------------------------------------------------- markdown parts


def section(text: str, name: str) -> str | None:
    """The text between ``<!-- check:NAME -->`` and ``<!-- /check:NAME -->``."""
    match = re.search(rf"<!--\s*check:{name}\s*-->(.*?)<!--\s*/check:{name}\s*-->", text, re.DOTALL)
    return match.group(1) if match else None


def _cells(line: str) -> list[str]:
    line = line.strip().removeprefix("|").removesuffix("|")
    return [re.sub(r"[`*]", "", cell).strip() for cell in re.split(r"(?<!\\)\|", line)]


def table(text: str) -> list[dict[str, str]]:
    """The rows of the first markdown table in ``text``, keyed by the header cells."""
    lines = [line for line in text.splitlines() if line.strip().startswith("|")]
    if not lines:
        return []
    header = _cells(lines[0])
    rows = []
    for line in lines[1:]:
        cells = _cells(line)
        if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue
        rows.append(dict(zip(header, cells, strict=False)))
    return rows


def values(cell: str | None) -> list[str]:
    """The values of a table cell: comma-separated, "-" for none, (remarks) ignored."""
    cleaned = re.sub(r"\([^)]*\)", "", cell or "")
    items = (item.strip() for item in re.split(r"[,;]", cleaned))
    return _sorted(item for item in items if item and item != "-")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block in ``text``."""
    return [
        (match.group(1).strip().lower(), match.group(2))
        for match in re.finditer(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", text, re.DOTALL | re.MULTILINE)
    ]


def _ascii_names(block: str) -> set[str]:
    """What the boxes of an ASCII diagram hold, one entry per box line."""
    return {match.group(1).strip() for match in re.finditer(r"│([^│\n]*)(?=│)", block)}


_MERMAID_NODE = re.compile(
    r"[A-Za-z_][\w-]*\s*(?:\[\[|\[\(|\(\[|\(\(|\[/|\[\\|\[|\(|\{|>)\s*\"?([^\"\]\)\}\n]*)"
)


def _mermaid_names(block: str) -> set[str]:
    """The first line of every node label of a Mermaid flowchart."""
    return {match.group(1).split("<br")[0].strip() for match in _MERMAID_NODE.finditer(block)}


def _rows_by(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    return {row.get(column, ""): row for row in rows if row.get(column)}


# ------------------------------------------------------------------- checks


def diagram_problems(text: str, stack: Stack) -> list[str]:
    """Every compose service has a box in the ASCII diagram and a node in the Mermaid one."""
    diagram = section(text, "diagram")
    if diagram is None:
        return [f"{OVERVIEW}: no <!-- check:diagram --> section around the diagrams"]
    blocks = fenced_blocks(diagram)
    drawings = {
        "ASCII": ([body for lang, body in blocks if lang in ("text", "")], _ascii_names),
        "Mermaid": ([body for lang, body in blocks if lang == "mermaid"], _mermaid_names),
    }
    found = []
    for kind, (bodies, names_of) in drawings.items():
        if not bodies:
            found.append(f"{OVERVIEW}: the diagram section has no {kind} diagram")
            continue
        shown = set().union(*(names_of(body) for body in bodies))
        for service in stack.services():
            if service not in shown:
                found.append(
                    f"{OVERVIEW}: the {kind} diagram does not show {service} "
                    f"(a service in {' + '.join(stack.defined_in(service))})"
                )
    return found


def expected_ports(stack: Stack, name: str) -> dict[str, tuple[list[str], Callable[[str, str], str]]]:
    """The port table's columns for service ``name``: the values, and the words for a mismatch."""
    development = stack.services(stack.development).get(name) or {}
    production = stack.services(stack.production).get(name) or {}
    dev_ports, prod_ports = _ports(development.get("ports")), _ports(production.get("ports"))
    exposed = [*(development.get("expose") or []), *(production.get("expose") or [])]
    internal = {str(port).split("/")[0] for port in exposed} | {port[2] for port in dev_ports + prod_ports}
    dev_files = stack.setting_files(name, "ports", (BASE, DEVELOPMENT))
    prod_files = stack.setting_files(name, "ports", (BASE, PRODUCTION))
    return {
        "Internal": (
            _sorted(internal),
            lambda doc, exp: f"listens on {doc} inside the network, the compose files say {exp}",
        ),
        "External": (
            _sorted(port[1] or "random" for port in dev_ports),
            lambda doc, exp: f"publishes {doc} in development, {dev_files} publishes {exp}",
        ),
        "Development": (
            _sorted(map(_mapping, dev_ports)),
            lambda doc, exp: f"maps {doc} in development, {dev_files} maps {exp}",
        ),
        "Production": (
            _sorted(map(_mapping, prod_ports)),
            lambda doc, exp: f"maps {doc} in production, {prod_files} maps {exp}",
        ),
    }


def port_table_problems(text: str, stack: Stack) -> list[str]:
    """One row per compose service, whose ports equal the compose files."""
    ports = section(text, "ports")
    if ports is None:
        return [f"{OVERVIEW}: no <!-- check:ports --> section around the port table"]
    rows = _rows_by(table(ports), "Service")
    services = stack.services()
    found = [
        f"{OVERVIEW}: port table lists {name}, which no compose file defines"
        for name in rows
        if name not in services
    ]
    for name in services:
        row = rows.get(name)
        if row is None:
            where = " + ".join(stack.defined_in(name))
            found.append(f"{OVERVIEW}: port table has no row for {name} (a service in {where})")
            continue
        for column, (want, words) in expected_ports(stack, name).items():
            have = values(row.get(column))
            if have != want:
                said = words(_show(have), _show(want) if want else "nothing")
                found.append(f"{OVERVIEW}: port table says {name} {said}")
    return found


def volume_problems(text: str, stack: Stack) -> list[str]:
    """The volumes section lists exactly the top-level named volumes."""
    volumes = section(text, "volumes")
    if volumes is None:
        return [f"{OVERVIEW}: no <!-- check:volumes --> section around the volumes table"]
    rows = table(volumes)
    if rows:
        listed = {next(iter(row.values()), "") for row in rows} - {""}
    else:
        listed = set(re.findall(r"^\s*[-*]\s+`?([\w.-]+)`?", volumes, re.MULTILINE))
    declared = stack.declared("volumes")
    found = [
        f"{OVERVIEW}: volumes section does not list volume {name}, "
        f"which {' + '.join(stack.defined_in(name, 'volumes'))} declares"
        for name in declared
        if name not in listed
    ]
    found += [
        f"{OVERVIEW}: volumes section lists volume {name}, which no compose file declares"
        for name in sorted(listed - set(declared))
    ]
    return found


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


def network_problems(text: str, stack: Stack) -> list[str]:
    """The network table lists exactly the networks, with their driver, subnets and gateways."""
    networks = section(text, "networks")
    if networks is None:
        return [f"{OVERVIEW}: no <!-- check:networks --> section around the network table"]
    rows = _rows_by(table(networks), "Network")
    declared = stack.declared("networks")
    found = [
        f"{OVERVIEW}: network table lists {name}, which no compose file declares"
        for name in rows
        if name not in declared
    ]
    for name, spec in declared.items():
        where = " + ".join(stack.defined_in(name, "networks"))
        row = rows.get(name)
        if row is None:
            found.append(f"{OVERVIEW}: network table has no row for network {name}, which {where} declares")
            continue
        subnets, gateways = _subnets(spec)
        driver = [str(spec.get("driver") or "bridge")]
        for column, want in (("Driver", driver), ("Subnet", subnets), ("Gateway", gateways)):
            have = values(row.get(column))
            if column in row and have != want:
                found.append(
                    f"{OVERVIEW}: network table says {name} has {column.lower()} {_show(have)}, "
                    f"{where} configures {_show(want)}"
                )
    return found


def _bytes(value: str) -> float | str:
    """A memory size in bytes ("512M", "1g", "1GiB"), else the text itself."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([kmgt]?)(?:i?b)?\s*", value.lower())
    if not match:
        return value.strip()
    return float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ")


def _same(column: str, have: str, want: str) -> bool:
    if column == "Memory limit":
        return _bytes(have) == _bytes(want)
    try:
        return float(have) == float(want)
    except ValueError:
        return have.strip() == want.strip()


def resource_problems(text: str, stack: Stack) -> list[str]:
    """The resource table equals the production replicas and limits."""
    resources = section(text, "resources")
    if resources is None:
        return [f"{OVERVIEW}: no <!-- check:resources --> section around the resource table"]
    rows = _rows_by(table(resources), "Service")
    production = stack.services(stack.production)
    found = [
        f"{OVERVIEW}: resource table lists {name}, which production does not run"
        for name in rows
        if name not in production
    ]
    for name, spec in production.items():
        row = rows.get(name)
        if row is None:
            found.append(f"{OVERVIEW}: resource table has no row for {name}, which production runs")
            continue
        deploy = spec.get("deploy") or {}
        limits = (deploy.get("resources") or {}).get("limits") or {}
        expected = {
            "Replicas": str(deploy.get("replicas", spec.get("scale", 1))),
            "CPU limit": str(limits.get("cpus", "-")),
            "Memory limit": str(limits.get("memory", "-")),
        }
        for column, want in expected.items():
            have = row.get(column, "")
            if not _same(column, have, want):
                found.append(
                    f"{OVERVIEW}: resource table says {name} has {column.lower()} {have or '-'}, "
                    f"{stack.setting_files(name, 'deploy', (BASE, PRODUCTION))} sets {want}"
                )
    return found


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
        build = spec.get("build")
        context = build.get("context") if isinstance(build, dict) else build
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
    """Production publishes ports only for frontend (react-vite) and API (fastapi) services."""
    production = stack.services(stack.production)
    kinds = service_kinds(project, production)
    found = []
    for name, spec in production.items():
        published = [port for port in _ports(spec.get("ports")) if port[1]]
        kind = kinds.get(name)
        if not published or kind in PUBLIC_KINDS:
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

# The checks of the overview against the compose files.
DOC_CHECKS = (diagram_problems, port_table_problems, volume_problems, network_problems, resource_problems)


def problems(project: Path) -> list[str]:
    """Every mismatch between the docs and the compose files of ``project``, one line each."""
    project = Path(project)
    stack, found = load_stack(project)
    if stack is not None:
        found += production_port_problems(project, stack)
        overview = project / OVERVIEW
        if overview.is_file():
            text = overview.read_text(encoding="utf-8")
            for check in DOC_CHECKS:
                found += check(text, stack)
        else:
            found.append(f"{OVERVIEW}: missing (it documents the compose files)")
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
    found = problems(parser.parse_args(argv).project)
    for line in found:
        print(line)
    if not found:
        print("docs match the compose files")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
