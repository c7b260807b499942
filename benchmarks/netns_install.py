"""What a build step's own network namespace (slirp4netns) costs an install.

    .venv/bin/python benchmarks/netns_install.py [N]

The same bubblewrap command runs N times with the host's network namespace shared
(what build steps had before) and N times in a namespace of its own with slirp4netns
attached (what they have now), alternating, and the medians are compared:

* ``true``: the fixed cost of setting the network up (slirp4netns start, ready, stop);
* ``pip download six==1.16.0 --no-cache-dir``: a small real install fetch from the
  package index (no download cache, so every run goes to the network).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from devlooper.sandboxes import bwrap, netns
from devlooper.sandboxes.process import run_process_sync

PYTHON = str(Path(os.path.realpath(sys.base_prefix)) / "bin" / "python3")
CA = "/etc/ssl/certs/ca-certificates.crt"


def command(argv: list[str], *, slirp: bool, resolv: Path) -> tuple[list[str], netns.SlirpNetwork | None]:
    downloads = resolv.parent / "dl"
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    if os.path.isfile(CA):
        env["PIP_CERT"] = CA
    network = netns.SlirpNetwork() if slirp else None
    mounts = bwrap.Mounts(
        rw={str(downloads): "/tmp"}, ro={str(resolv): "/etc/resolv.conf"} if slirp else {},
        etc=str(bwrap.minimal_etc(resolv.parent)),
    )
    wrapped = bwrap.wrap(
        argv, mounts, workdir="/tmp", env=env, toolchains=[str(Path(PYTHON).parent)],
        extra=network.bwrap_args if network else (),
    )
    if not slirp:  # the host's network namespace, as build steps had it before
        if "--unshare-net" in wrapped:
            wrapped.remove("--unshare-net")
        else:
            wrapped.insert(wrapped.index("--unshare-all") + 1, "--share-net")
    return wrapped, network


def once(argv: list[str], *, slirp: bool, resolv: Path) -> float:
    wrapped, network = command(argv, slirp=slirp, resolv=resolv)
    started = time.perf_counter()
    result = run_process_sync(wrapped, cwd="/", env={}, timeout=120, attach=network)
    took = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"failed ({'slirp' if slirp else 'host'}): {result.output[-600:]}")
    return took


def main(n: int) -> None:
    if not bwrap.usable()[0]:
        raise SystemExit(f"needs bubblewrap: {bwrap.usable()[1]}")
    with tempfile.TemporaryDirectory() as tmp:
        resolv = Path(tmp) / "resolv.conf"
        resolv.write_text(netns.RESOLV_CONF)
        os.chmod(tmp, 0o755)
        (Path(tmp) / "dl").mkdir()
        if bwrap.owner_ids():
            os.chown(Path(tmp) / "dl", *bwrap.owner_ids())
        cases = {
            "true": ["true"],
            "pip download six": [PYTHON, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q",
                                 "-d", "/tmp", "six==1.16.0"],
        }
        print(f"median of {n} runs each, {'root (privileged bwrap)' if os.geteuid() == 0 else 'user namespaces'}")
        for name, argv in cases.items():
            host, slirp = [], []
            for _ in range(n):
                host.append(once(argv, slirp=False, resolv=resolv))
                slirp.append(once(argv, slirp=True, resolv=resolv))
            h, s = statistics.median(host), statistics.median(slirp)
            print(f"{name:18} host netns {h * 1000:7.0f} ms   own netns + slirp4netns {s * 1000:7.0f} ms   "
                  f"ratio {s / h:5.2f}   (+{(s - h) * 1000:.0f} ms)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
