"""Run one block: shell commands one by one, Python as a script, HTTP requests as written.

Shell: a command is its lines (with `\\` continuations); comment lines right after it are the
output the docs show, checked by `output.mismatch`. A command must exit 0, or a code its own
comment names (`# ... exit 10`); curl must get a status below 400 unless the docs show or name
another. `mloop serve ...` starts in the background (on a free port instead of 8000) until the
block ends; `localhost:8000` is the page's server otherwise.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

from tests.docs import filling, output
from tests.docs.markdown import Block
from tests.docs.world import MLOOP, Server, World, free_port

STATUS = "__doc_status__"
# Literal ids in the docs that stand for one learned from an earlier answer on the same page.
PLACEHOLDERS = {
    "docs/jobs.md": {"0b7c…": "job_id"},
    "docs/security.md": {"3f9c2a1b7d4e": "key_id"},
}
LEARN = {
    "job_id": re.compile(r'"job_id":\s*"([0-9a-f-]{8,})"'),
    "key_id": re.compile(r"\bmlk_([0-9a-f]+)_"),
    "KEY": re.compile(r"\b(mlk_[0-9a-f]+_[\w-]+)"),  # the first key printed: $KEY from then on
}
# Settings of a page's server: security.md's examples send credentials, so auth is on there.
SERVER_SETTINGS = {"docs/security.md": {"MLOOP_AUTH": "on"}}


@dataclass
class Command:
    text: str
    comment: str = ""  # the inline comment of its last line
    shown: list[str] = field(default_factory=list)  # output lines the docs show after it

    @property
    def allowed_exits(self) -> set[int]:
        return {0, *(int(code) for code in re.findall(r"\bexit (\d+)", self.comment))}


def _open_quote(text: str) -> bool:
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return True
    return False


def commands(text: str) -> list[Command]:
    found: list[Command] = []
    current: Command | None = None
    continued = False
    for line in text.splitlines():
        if continued and current is not None:
            current.text += "\n" + line
        elif line.lstrip().startswith("#"):
            if current is not None:
                current.shown.append(re.sub(r"^\s*# ?", "", line))
            continue
        elif not line.strip():
            current = None
            continue
        else:
            current = Command(line)
            found.append(current)
        continued = line.rstrip().endswith("\\") or _open_quote(current.text)
        if not continued:
            inline = re.search(r"\s#\s(.*)$", line)
            current.comment = inline[1] if inline else ""
    return found


def _substitute(text: str, block: Block, world: World) -> str:
    for literal, name in PLACEHOLDERS.get(_page_key(block), {}).items():
        if literal in text:
            assert name in world.learned, f"{literal} stands for a {name}; none answered yet"
            text = text.replace(literal, world.learned[name])
    return text


def _page_key(block: Block) -> str:
    return block.name.rsplit(":", 1)[0]


def _learn(world: World, text: str) -> None:
    for name, pattern in LEARN.items():
        if not (found := pattern.findall(text)):
            continue
        if name.isupper():  # an environment variable: the first value printed on the page
            world.env.setdefault(name, found[0])
        else:  # an id: the latest one
            world.learned[name] = found[-1]


def _serve(text: str, world: World) -> Server:
    args = shlex.split(text.split(" #")[0])
    port = free_port()
    if "--port" in args:
        args[args.index("--port") + 1] = str(port)
    else:
        args += ["--port", str(port)]
    return Server([MLOOP, *args[1:]], world.folder, world.env, port)


def run_shell(block: Block, world: World) -> list[tuple[str, str]]:
    """Run the block's commands in order; returns (command as run, its stdout) per command."""
    servers: list[Server] = []
    transcript: list[tuple[str, str]] = []
    try:
        for command in commands(block.text):
            text = _substitute(command.text, block, world)
            if text.startswith("mloop serve"):
                servers.append(_serve(text, world))
                continue
            port = servers[-1].port if servers else None
            if port is None and filling.SERVER.search(text):
                port = world.ensure_server(**SERVER_SETTINGS.get(_page_key(block), {})).port
            if port is not None:
                text = filling.point_at(text, port)
            if text.startswith("curl"):
                text = filling.complete_curl(text, world.row, world.new_prediction_id)
                text = text.rstrip().split(" #")[0] + f" -w '\\n{STATUS}%{{http_code}}'"
            done, answer = _run_command(text, command, world)
            where = f"{block.name}: `{command.text}`"
            if text.startswith("curl"):
                answer, _, status = answer.rpartition(f"\n{STATUS}")
                _check_status(int(status or 0), command, where, answer)
            assert done.returncode in command.allowed_exits, (
                f"{where} exited {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
            )
            _learn(world, answer + done.stderr)
            transcript.append((text, answer))
            if command.shown:
                problem = output.mismatch("\n".join(command.shown), answer + done.stderr)
                assert problem is None, f"{where}: {problem}\n{answer[-2000:]}"
    finally:
        for server in servers:
            server.stop()
    return transcript


def _run_command(text: str, command: Command, world: World) -> tuple:
    """Run one command; a read (curl without -X or -d) is retried for up to 30 s until it
    shows what the docs show (a job's final state, say)."""
    reads = text.startswith("curl") and not re.search(r"\s(-X|-d|--data)\b", text)
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=world.folder,
            env=world.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        answer = done.stdout
        if not (reads and command.shown) or time.monotonic() > deadline:
            return done, answer
        body = answer.rpartition(f"\n{STATUS}")[0]
        if output.mismatch("\n".join(command.shown), body) is None:
            return done, answer
        time.sleep(0.5)


def _check_status(status: int, command: Command, where: str, answer: str) -> None:
    shown, _ = output.expected_status("\n".join(command.shown))
    named = {int(code) for code in re.findall(r"\b([45]\d\d)\b", command.comment)}
    if shown is not None:
        assert status == shown, f"{where} answered {status}, the docs show {shown}: {answer}"
    else:
        assert status < 400 or status in named, f"{where} answered {status}: {answer[:2000]}"


def python_prelude(block: Block, world: World) -> str:
    lines = [f"__doc_row__ = {world.row!r}"]
    given = {"run_id": repr(world.given["RUN_ID"])}
    given.update(
        {name: f"__import__('pandas').read_csv('{name}.csv')" for name in ("batch_1", "batch_2")}
    )
    for name, value in given.items():
        used = re.search(rf"\b{name}\b", block.text)
        assigned = re.search(rf"^\s*{name}\s*=", block.text, re.M)
        if used and not assigned:
            lines.append(f"{name} = {value}")
    return "\n".join(lines) + "\n"


def run_python(block: Block, world: World) -> None:
    source = filling.complete_python(block.text)
    if filling.SERVER.search(source):
        source = filling.point_at(source, world.ensure_server().port)
    script = python_prelude(block, world) + source
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=world.folder,
        env=world.env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{block.name} failed:\n{done.stderr[-3000:]}"


def run_http(block: Block, world: World) -> None:
    """```http: `METHOD /path`, headers, a blank line, a body; optional `# 200` last line."""
    head, _, body = block.text.partition("\n\n")
    request, *headers = head.splitlines()
    method, path = request.split()[:2]
    status = None
    if body.strip().splitlines() and body.strip().splitlines()[-1].startswith("# "):
        *body_lines, last = body.strip().splitlines()
        body, status = "\n".join(body_lines), int(last[2:].split()[0])
    content = None
    if body.strip():
        data = filling.complete(filling.json_body(body), world.row, world.new_prediction_id)
        content = json.dumps(data)
    pairs = dict(line.split(":", 1) for line in headers if ":" in line)
    answer = httpx.request(
        method,
        world.ensure_server().url + path,
        headers={k.strip(): v.strip() for k, v in pairs.items()},
        content=content,
        timeout=120,
    )
    if status is not None:
        assert answer.status_code == status, f"{block.name}: {answer.status_code} {answer.text}"
    else:
        assert answer.status_code < 400, f"{block.name}: {answer.status_code} {answer.text}"


def run_block(block: Block, world: World) -> None:
    if block.lang in ("python", "py"):
        run_python(block, world)
    elif block.lang == "http":
        run_http(block, world)
    else:
        run_shell(block, world)
