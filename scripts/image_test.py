"""`make image-test`: builds both images and checks each as a user would run it.

docker where its engine answers, else podman (installed from Debian if missing). Each image is run on the
host's network against the tests' fake Spotify (tests/fake_spotify) on 127.0.0.1, and checked for: /health,
its user, tini as PID 1, its HEALTHCHECK, a token, a read-only root filesystem, TOKENER_STATE_DIR on a
volume surviving a new container, and a quick stop on SIGTERM. It prints what each image adds to its base,
layer by layer, and how long each step took. Everything it starts is removed on exit, however it exits.

Environment (docs/docker.md, "make image-test"):
  IMAGE_ENGINE       docker or podman (default: docker if its daemon answers, else podman)
  IMAGE_RUN_FLAGS    flags for every container run (default: found by trying, see ``run_flags``)
  IMAGE_BUILD_FLAGS  extra flags for every build
  IMAGE_BUILD_CA     a CA bundle the build trusts besides the system's (default: $PIP_CERT if set)
  IMAGE_TARGETS      the images to build and check (default: "slim full"; another architecture: "slim")
  IMAGE_ARCH         another architecture (Debian's name, e.g. arm64; `make image-test ARCH=arm64`): built
                     under qemu-user-static on a stand-in base for it, and checked as users run it
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fake_spotify import FakeSpotify  # noqa: E402

BASE = "docker.io/library/python:3.11-slim-bookworm"
LIMIT_MB = {"slim": 100, "full": 650}
"""The most each image may add to its base (issue 22): the stand-in base, where one is used, never counts."""
LOGS = ROOT / "build" / "image-test"  # the builds' whole output (git ignores build/)
STATE_DIR = "/var/lib/spotify-tokener"  # the image's TOKENER_STATE_DIR
CA_IN_CONTAINER = "/run/fake-spotify-ca.pem"
UID = "10001"
STOP_LIMIT_S = 5.0
STAND_IN_NOTE = (
    "no registry reachable: using a stand-in for python:3.11-slim-bookworm made from Debian's packages "
    "(mmdebstrap); sizes below are what each image adds to it, as they would be to the real base"
)
# Debian's slim images drop these paths and clean apt's cache after each install; the stand-in does too,
# so that what an image adds to it weighs what it would add to the real base.
SLIM_DPKG = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/groff/*",
    "path-exclude=/usr/share/lintian/*",
)
_CLEAN = '"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"'
CLEAN_APT = (
    f"DPkg::Post-Invoke {{ {_CLEAN}; }}",
    f"APT::Update::Post-Invoke {{ {_CLEAN}; }}",
    'Dir::Cache::pkgcache ""',
    'Dir::Cache::srcpkgcache ""',
)


@dataclass(frozen=True)
class Arch:
    """The architecture to build for: this machine's, or another one under emulation."""

    name: str  # Debian's: amd64, arm64
    native: bool

    @property
    def base(self) -> str:
        return BASE if self.native else f"localhost/spotify-tokener-base:{self.name}"

    def tag(self, target: str) -> str:
        return f"spotify-tokener:{target}" if self.native else f"spotify-tokener:{target}-{self.name}"

    def build_flags(self) -> list[str]:
        return (
            []
            if self.native
            else ["--platform", f"linux/{self.name}", "--build-arg", f"BASE_IMAGE={self.base}"]
        )


def arch() -> Arch:
    here = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    wanted = os.environ.get("IMAGE_ARCH") or here
    if wanted != here:
        qemu = {"amd64": "x86_64", "arm64": "aarch64"}.get(wanted, wanted)
        registered = Path(f"/proc/sys/fs/binfmt_misc/qemu-{qemu}")
        if not registered.exists():
            print(f"    {wanted} needs qemu-user-static: installing it from the distribution")
            sh([str(ROOT / "scripts/ensure-apt.sh"), "qemu-user-static", "binfmt-support"], timeout=900)
        if not registered.exists():
            raise Failed(f"{wanted} binaries cannot run here: try `update-binfmts --enable qemu-{qemu}`")
    return Arch(wanted, native=wanted == here)


class Failed(Exception):
    """A check that did not pass: what was expected, and what was seen."""


@dataclass
class Timings:
    steps: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        print(f"==> {name}", flush=True)
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps.append((name, time.monotonic() - started))

    def report(self) -> None:
        print("\nTimings:")
        for name, seconds in self.steps:
            print(f"  {seconds:7.1f} s  {name}")
        print(f"  {sum(s for _, s in self.steps):7.1f} s  in all")


def sh(command: list[str], *, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Runs a command, its output kept; a failure shows the command and the end of its output."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-40:])
        raise Failed(f"{shlex.join(command)} exited {done.returncode}:\n{tail}")
    return done


@dataclass
class Engine:
    """docker or podman, with the flags this machine needs (found by trying, or given)."""

    name: str
    options: list[str] = field(default_factory=list)  # before the subcommand
    run_flags: list[str] = field(default_factory=list)

    def __call__(self, *args: str) -> list[str]:
        return [self.name, *self.options, *args]

    def build_flags(self) -> list[str]:
        # podman and buildah write OCI images by default, which have no HEALTHCHECK.
        own = ["--format", "docker"] if self.name == "podman" else []
        # The limits a container needs to start here apply as much to a build's RUN steps.
        limits = [flag for flag in self.run_flags if flag.startswith("--ulimit=")]
        return [*own, *limits, *shlex.split(os.environ.get("IMAGE_BUILD_FLAGS", ""))]

    def exists(self, image: str) -> bool:
        return sh(self("image", "inspect", image), check=False).returncode == 0

    def inspect(self, what: str, template: str) -> str:
        return sh(self("inspect", "--format", template, what)).stdout.strip()


def engine() -> Engine:
    wanted = os.environ.get("IMAGE_ENGINE", "")
    if wanted in ("", "docker") and shutil.which("docker"):
        if sh(["docker", "info"], check=False, timeout=30).returncode == 0:
            return Engine("docker")
        if wanted:
            raise Failed("IMAGE_ENGINE=docker, but the docker daemon does not answer (docker info)")
        print("    docker is installed but its daemon does not answer: using podman")
    if not shutil.which("podman"):
        print("    podman is missing: installing it from the distribution")
        sh([str(ROOT / "scripts/ensure-apt.sh"), "podman", "buildah", "runc"], timeout=900)
    found = Engine("podman")
    if sh(found("info"), check=False).returncode != 0:  # no systemd to manage cgroups through
        found.options = ["--cgroup-manager=cgroupfs"]
        sh(found("info"))
    return found


def ensure_base(engine: Engine, arch: Arch) -> str:
    """The base image: present, pulled, or made from Debian's packages where no registry answers
    (always, for another architecture: a pulled one would take the native one's name)."""
    if engine.exists(arch.base):
        return "present"
    if arch.native and sh(engine("pull", BASE), check=False, timeout=300).returncode == 0:
        return "pulled"
    print(f"    {STAND_IN_NOTE if arch.native else f'a stand-in base for {arch.name}, made with mmdebstrap'}")
    if not shutil.which("mmdebstrap"):
        sh([str(ROOT / "scripts/ensure-apt.sh"), "mmdebstrap"], timeout=900)
    options = [f"--dpkgopt={o}" for o in SLIM_DPKG] + [f"--aptopt={o}" for o in CLEAN_APT]
    make = [
        "mmdebstrap",
        "--variant=minbase",
        "--quiet",
        f"--architectures={arch.name}",
        *options,
        "--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates",
        "bookworm",
        "-",
    ]
    its_arch = ["--arch", arch.name] if engine.name == "podman" else ["--platform", f"linux/{arch.name}"]
    changes = ["--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["python3"]']
    load = engine("import", *its_arch, *changes, "-", arch.base)
    with subprocess.Popen(make, stdout=subprocess.PIPE) as maker:
        loaded = subprocess.run(load, stdin=maker.stdout, capture_output=True, text=True, check=False)
    if maker.returncode != 0 or loaded.returncode != 0:
        raise Failed(f"the stand-in base could not be made: {loaded.stderr.strip()[-2000:]}")
    return "stand-in"


def run_flags(engine: Engine, base: str) -> list[str]:
    """The first set of flags a container starts with here. Some hosts refuse the resource limits
    podman asks for by default (runc: "error setting rlimits"): then the caller's own limits, else
    modest ones, are asked for instead."""
    given = os.environ.get("IMAGE_RUN_FLAGS")
    if given is not None:
        return shlex.split(given)
    own = [
        f"--ulimit={name}={':'.join(map(str, resource.getrlimit(limit)))}"
        for name, limit in (("nofile", resource.RLIMIT_NOFILE), ("nproc", resource.RLIMIT_NPROC))
    ]
    for flags in ([], own, ["--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024"]):
        if sh(engine("run", "--rm", *flags, base, "true"), check=False, timeout=120).returncode == 0:
            return flags
    raise Failed(f"no container starts here: {shlex.join(engine('run', '--rm', base, 'true'))}")


def build(engine: Engine, arch: Arch, target: str, tag: str, log: Path) -> None:
    ca = os.environ.get("IMAGE_BUILD_CA") or os.environ.get("PIP_CERT", "")
    secret = ["--secret", f"id=build_ca,src={ca}"] if ca else []
    flags = [*engine.build_flags(), *arch.build_flags(), *secret]
    command = engine("build", *flags, "--target", target, "-t", tag, str(ROOT))
    with log.open("w") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise Failed(f"{shlex.join(command)} exited {done.returncode} (whole log: {log}):\n{tail}")


def sizes(engine: Engine, tag: str, base: str) -> float:
    """Prints the layers the image adds to its base and returns their weight in MB."""
    added = (int(engine.inspect(tag, "{{.Size}}")) - int(engine.inspect(base, "{{.Size}}"))) / 1e6
    layers = sh(
        engine("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", tag)
    ).stdout.splitlines()
    base_layers = len(sh(engine("history", "--quiet", base)).stdout.splitlines())
    print(f"    {tag} adds {added:.0f} MB to its base; its layers, newest first:")
    for line in layers[: len(layers) - base_layers]:
        size, created_by = line.split("\t", 1)
        if not size.startswith("0"):
            print(f"      {size:>9}  {created_by[:90]}")
    return added


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, condition: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise Failed(f"{what}: not within {timeout_s:.0f} s")
        time.sleep(0.2)


def get(url: str, timeout_s: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:  # noqa: S310 (http on loopback)
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Check:
    """One image's checks; the containers and volumes it makes are listed for the clean-up."""

    engine: Engine
    fake: FakeSpotify
    ca_file: Path
    target: str
    tag: str
    prefix: str
    made: list[list[str]]  # the commands that remove what was made, run at exit
    patience_s: float = 60  # for a container to answer /health (longer under emulation)

    def start(self, name: str, *flags: str, env: dict[str, str] | None = None) -> tuple[str, str]:
        """Runs the image detached on the host's network; returns its name and its address."""
        port = free_port()
        settings = {
            "PORT": str(port),
            "TOKENER_CONNECT_TO": self.fake.connect_to,
            "TOKENER_CA_FILE": CA_IN_CONTAINER,
            **(env or {}),
        }
        health = ["--health-interval=1s"] if self.engine.name == "docker" else []  # else 30 s to wait
        container = f"{self.prefix}-{self.target}-{name}"
        self.made.append(self.engine("rm", "--force", container))
        sh(
            self.engine(
                "run",
                "--detach",
                "--name",
                container,
                "--network",
                "host",
                *self.engine.run_flags,
                *health,
                "--volume",
                f"{self.ca_file}:{CA_IN_CONTAINER}:ro",
                *flags,
                *(f"--env={k}={v}" for k, v in settings.items()),
                self.tag,
            )
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(f"{container} answering /health", lambda: self.answers(url, container), self.patience_s)
        except Failed as failure:
            raise Failed(f"{failure}\n{self.logs(container)}") from None
        return container, url

    def answers(self, url: str, container: str) -> bool:
        if self.engine.inspect(container, "{{.State.Running}}") != "true":
            raise Failed(f"{container} exited at start:\n{self.logs(container)}")
        with contextlib.suppress(OSError):
            return get(f"{url}/health", 1)[0] == 200
        return False

    def logs(self, container: str) -> str:
        done = sh(self.engine("logs", "--tail", "30", container), check=False)
        return "\n".join(f"      | {line}" for line in (done.stdout + done.stderr).splitlines())

    def exec(self, container: str, *command: str) -> str:
        return sh(self.engine("exec", container, *command)).stdout.strip()

    def token(self, url: str, container: str) -> str:
        status, body = get(f"{url}/api/token", 90)
        token = json.loads(body).get("accessToken") if status == 200 else None
        if token not in self.fake.issued_tokens():
            raise Failed(f"/api/token: {status}, not a token of the fake\n{self.logs(container)}")
        return str(token)

    def as_users_run_it(self, env: dict[str, str]) -> None:
        container, url = self.start("plain", env=env)
        say(f"/health answers ({self.engine.inspect(self.tag, '{{.Config.User}}')} in the image)")
        uid = self.exec(container, "id", "-u")
        owners = set(self.exec(container, "sh", "-c", "stat -c %u /proc/[0-9]*").split())
        pid1 = self.exec(container, "cat", "/proc/1/comm")
        if uid != UID or owners != {UID} or pid1 != "tini":
            raise Failed(f"not uid {UID} under tini: uid {uid}, processes' {owners}, PID 1 {pid1}")
        say(f"runs as uid {uid}, every process too, with tini as PID 1")
        self.healthy(container)
        self.token(url, container)
        say(f"a token from the fake Spotify, sources {env.get('TOKENER_SOURCES', 'as the image sets them')}")
        started = time.monotonic()
        sh(self.engine("stop", "-t", "30", container))
        took, code = time.monotonic() - started, self.engine.inspect(container, "{{.State.ExitCode}}")
        if took > STOP_LIMIT_S or code != "0":
            raise Failed(f"SIGTERM: stopped in {took:.1f} s with exit code {code}\n{self.logs(container)}")
        say(f"SIGTERM: stopped in {took:.1f} s, exit code 0")

    def healthy(self, container: str) -> None:
        image = json.loads(sh(self.engine("image", "inspect", self.tag)).stdout)[0]
        if not (image.get("Healthcheck") or image["Config"].get("Healthcheck")):  # podman's place, docker's
            raise Failed("the image has no HEALTHCHECK (podman/buildah: build with --format docker)")
        if self.engine.name == "podman":  # podman runs health checks from systemd timers, if at all
            sh(self.engine("healthcheck", "run", container))
        else:
            template = "{{.State.Health.Status}}"
            wait_for("the health check", lambda: self.engine.inspect(container, template) == "healthy", 30)
        say("the image's HEALTHCHECK passes")

    def read_only_with_state(self, env: dict[str, str]) -> None:
        """Hardened as in the compose files, and the state folder on a named volume: a new container
        on the same volume serves the kept token without asking Spotify again."""
        volume = f"{self.prefix}-{self.target}-state"
        sh(self.engine("volume", "create", volume))
        self.made.append(self.engine("volume", "rm", "--force", volume))
        # As the compose files run it: read-only, every capability dropped, no new privileges.
        hardened = ("--read-only", "--tmpfs", "/tmp", "--cap-drop=ALL", "--security-opt=no-new-privileges")  # noqa: S108
        flags = (*hardened, "--volume", f"{volume}:{STATE_DIR}")
        first, url = self.start("read-only", *flags, env=env)
        token = self.token(url, first)
        say("read-only root filesystem (tmpfs /tmp), no capabilities: serves, and a token")
        sh(self.engine("stop", "-t", "30", first))
        calls = self.fake.token_requests
        second, url = self.start("restarted", *flags, env=env)
        again = self.token(url, second)
        if again != token or self.fake.token_requests != calls:
            raise Failed(f"TOKENER_STATE_DIR: a new container asked Spotify again\n{self.logs(second)}")
        say("TOKENER_STATE_DIR on a volume: a new container serves the kept token, no call to Spotify")
        sh(self.engine("stop", "-t", "30", second))


def say(what: str) -> None:
    print(f"    ok: {what}", flush=True)


def clean(made: list[list[str]]) -> None:
    for command in reversed(made):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(command, capture_output=True, timeout=60, check=False)


def main() -> int:
    signal.signal(signal.SIGTERM, _exit_on)  # so that `finally` cleans up on a CI's cancel too
    timings, made = Timings(), list[list[str]]()
    prefix = f"tokener-image-test-{os.getpid()}"
    fake = FakeSpotify().start()
    scratch = Path(tempfile.mkdtemp(prefix="image-test-"))
    LOGS.mkdir(parents=True, exist_ok=True)
    try:
        with timings.step("container engine"):
            found, wanted = engine(), arch()
        targets = os.environ.get("IMAGE_TARGETS", "slim full" if wanted.native else "slim").split()
        with timings.step(f"base image ({wanted.base}, {wanted.name})"):
            print(f"    base: {ensure_base(found, wanted)}")
        found.run_flags = run_flags(found, wanted.base)
        print(f"    {found.name}, options {found.options or 'none'}, run flags {found.run_flags or 'none'}")
        ca_file = scratch / "ca.pem"  # readable by the container's user, unlike the fake's own 0600 file
        shutil.copyfile(fake.ca_file, ca_file)
        ca_file.chmod(0o644)
        scratch.chmod(0o755)
        added: dict[str, float] = {}
        for target in targets:
            tag = wanted.tag(target)
            with timings.step(f"build {tag} (--target {target})"):
                build(found, wanted, target, tag, LOGS / f"build-{target}-{wanted.name}.log")
            added[target] = sizes(found, tag, wanted.base)
            # The full image is checked through its browser: its default would answer from the direct source.
            env = {"TOKENER_SOURCES": "browser"} if target == "full" else {}
            check = Check(found, fake, ca_file, target, tag, prefix, made, 60 if wanted.native else 600)
            with timings.step(f"check {tag} as users run it"):
                check.as_users_run_it(env)
            if wanted.native:  # under emulation: started, serving, stopping, and that is enough
                with timings.step(f"check {tag} read-only, with its state on a volume"):
                    check.read_only_with_state(env)
        over = {t: mb for t, mb in added.items() if mb > LIMIT_MB[t]}
        if over:
            raise Failed(f"over the size limit: {over} (limits in MB added to the base: {LIMIT_MB})")
    except Failed as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        clean(made)
        fake.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        timings.report()
    print("\nimage-test: every check passed")
    return 0


def _exit_on(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
