"""Real Claude Code sessions, each interactive in its own tmux window.

Every session gets its own HOME, config dir, work dir and debug log under the
run directory, a config seeded so it starts without any dialog but the
development-channels warning (confirmed here), the fake model as its API, and
the cached feature flag that turns channels on offline. Channels only work in
interactive sessions, hence tmux; the suite's tmux server is private.
"""

import json
import os
import subprocess
import time
from pathlib import Path

API_KEY = "sk-ant-e2e-fake-key-0000000000"
DEV_CHANNELS_WARNING = "I am using this for local development"
REGISTERED = "Channel notifications registered"
SKIPPED = "Channel notifications skipped"


class Tmux:
    def __init__(self, socket):
        self.socket = socket

    def __call__(self, *args, check=True):
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check, timeout=10
        )

    def kill_server(self):
        self("kill-server", check=False)


def _seed_config(config_dir, work_dir, version, project_servers, flags):
    config_dir.mkdir(parents=True)
    project = {"hasTrustDialogAccepted": True}
    if project_servers:
        project["enabledMcpjsonServers"] = project_servers
    config = {
        "hasCompletedOnboarding": True,
        "lastOnboardingVersion": version,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        "projects": {str(work_dir): project},
        # Claude Code registers channels only when the remote feature flag
        # tengu_harbor is on; offline, its on-disk flag cache is the one
        # source. A test-only stand-in, not a supported setting.
        "cachedGrowthBookFeatures": {"tengu_harbor": True, **flags},
    }
    (config_dir / ".claude.json").write_text(json.dumps(config, indent=1))


class Session:
    """One `claude` terminal. `mcp` is the server entry of its MCP config;
    with `project_file` it goes to the work dir's `.mcp.json` (what a team
    commits; or, if it is a string, that file's text) instead of
    `--mcp-config`; with `mcp_add` (a `claude mcp add …`
    command line) the session registers the server that way before it
    starts, as a user would, and starts with no MCP config of its own.
    `flags` are more cached feature flags (`tengu_harbor_permissions` turns
    on the permission relay)."""

    def __init__(self, tmux, run_dir, name, *, claude, version, model_url, mcp, env=None, project_file=False,
                 flags=None, mcp_add=None):
        self.tmux, self.name = tmux, name
        self.dir = Path(run_dir) / name
        self.debug_log = self.dir / "debug.log"
        home, config, work = self.dir / "home", self.dir / "config", self.dir / "work"
        for d in (home, work):
            d.mkdir(parents=True)
        _seed_config(config, work, version, ["switchboard"] if project_file else [], flags or {})
        servers = json.dumps({"mcpServers": {"switchboard": mcp}}, indent=1)
        if project_file:
            # A string is a whole `.mcp.json`, as a README prints it.
            (work / ".mcp.json").write_text(project_file if isinstance(project_file, str) else servers)
            mcp_flags = []
        elif mcp_add:
            mcp_flags = []
        else:
            (self.dir / "mcp.json").write_text(servers)
            mcp_flags = ["--mcp-config", str(self.dir / "mcp.json"), "--strict-mcp-config"]
        # `claude` on the PATH, as for a user who installed it.
        bin_dir = self.dir / "bin"
        bin_dir.mkdir()
        (bin_dir / "claude").symlink_to(claude)
        environment = {
            "PATH": "%s:%s" % (bin_dir, os.environ.get("PATH", "/usr/bin:/bin")),
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(config),
            "TERM": "xterm-256color",
            "LANG": "C.UTF-8",
            "ANTHROPIC_BASE_URL": model_url,
            "ANTHROPIC_API_KEY": API_KEY,
            "ANTHROPIC_CUSTOM_HEADERS": "X-E2E-Agent: " + name,
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            # keeps the flag cache readable with nonessential traffic off
            "CLAUDE_CODE_GB_DISK_CACHE_WHEN_TELEMETRY_OFF": "1",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
            # MCP tools go to the model directly, not through ToolSearch
            "ENABLE_TOOL_SEARCH": "false",
            **(env or {}),
        }
        command = [
            claude,
            "--debug-file", str(self.debug_log),
            *mcp_flags,
            "--permission-mode", "default",
            "--allowedTools", "mcp__switchboard",
            "--dangerously-load-development-channels", "server:switchboard",
        ]
        self.environment, self.work = environment, work
        if mcp_add:
            self.cli(mcp_add)
        script = self.dir / "run.sh"
        script.write_text(
            "#!/bin/sh\ncd %s || exit 1\necho $$ > pid\nexec env -i %s %s\n"
            % (_quote(str(work)), " ".join(_quote("%s=%s" % kv) for kv in environment.items()),
               " ".join(_quote(c) for c in command))
        )
        script.chmod(0o755)
        (work / "pid").unlink(missing_ok=True)
        # A tmux session of its own: one window, a wide screen to read from.
        self.tmux("new-session", "-d", "-s", name, "-x", "200", "-y", "50", str(script))
        self.tmux("set-option", "-t", name, "remain-on-exit", "on")

    def cli(self, command_line, timeout=30):
        """Runs a `claude …` command line in this session's home and config,
        as the user of this terminal would; returns what it printed."""
        done = subprocess.run(["sh", "-c", command_line], cwd=self.work, env=self.environment,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError("%s: %r failed (%d): %s%s" % (self.name, command_line, done.returncode,
                                                              done.stdout, done.stderr))
        return done.stdout + done.stderr

    @property
    def pid(self):
        path = self.dir / "work" / "pid"
        return int(path.read_text()) if path.exists() else None

    def debug_text(self):
        try:
            return self.debug_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def count(self, needle):
        return self.debug_text().count(needle)

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", self.name, check=False).stdout

    def confirm_dev_channels(self):
        if DEV_CHANNELS_WARNING in self.screen():
            self.tmux("send-keys", "-t", self.name, "Enter")
            return True
        return False

    def type(self, text, timeout=5):
        """Types `text` and, once it shows in the prompt, Enter. (Keys that
        arrive together are taken as a paste, where Enter does not submit.)"""
        self.tmux("send-keys", "-t", self.name, "-l", text)
        deadline = time.monotonic() + timeout
        while text[-20:] not in self.screen().replace("\n", ""):
            if time.monotonic() > deadline:
                raise TimeoutError("%s: typed text did not show on the screen" % self.name)
            time.sleep(0.05)
        self.tmux("send-keys", "-t", self.name, "Enter")

    def detailed_transcript(self, timeout=5):
        """The screen in Claude Code's detailed transcript view (ctrl+o),
        which prints each tool call with its arguments and result."""
        self.tmux("send-keys", "-t", self.name, "C-o")
        deadline = time.monotonic() + timeout
        while "Showing detailed transcript" not in (screen := self.screen()):
            if time.monotonic() > deadline:
                raise TimeoutError("%s: the detailed transcript did not open" % self.name)
            time.sleep(0.05)
        self.tmux("send-keys", "-t", self.name, "C-o")
        return screen

    def close(self):
        """What closing the terminal does: the window goes, claude gets SIGHUP."""
        self.tmux("kill-session", "-t", self.name, check=False)

    def report(self, needles=("switchboard", "Channel", "MCP")):
        lines = [line for line in self.debug_text().splitlines() if any(n in line for n in needles)]
        screen = "\n".join(line for line in self.screen().splitlines() if line.strip())
        return "--- %s: screen\n%s\n--- %s: debug log (last 40 matching lines of %s)\n%s\n" % (
            self.name, screen, self.name, self.debug_log, "\n".join(lines[-40:]))


def _quote(value):
    return "'" + value.replace("'", "'\\''") + "'"


def wait_registered(sessions, timeout):
    """Confirms each session's dev-channel warning and waits until all have
    registered the channel, or one says it will not. Returns the sessions
    that did not register."""
    deadline = time.monotonic() + timeout
    pending = list(sessions)
    while pending and time.monotonic() < deadline:
        for session in list(pending):
            if session.count(REGISTERED) >= 1:
                pending.remove(session)
            elif session.count(SKIPPED) >= 1:
                return pending
            else:
                session.confirm_dev_channels()
        time.sleep(0.2)
    return pending
