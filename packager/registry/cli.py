"""``pack registry serve``: a local models registry, persistent on disk, for rehearsing the whole flow.

Serves the models service of docs/publish.md (register, upload, confirm and seal, the weights endpoint,
downloads) from a folder: ROOT/registry.json holds the models and packages, ROOT/files/ the package files,
so it survives a restart. It answers the same secret as the real service: set MODELS_SERVICE_INTERNAL_SECRET
(any string) before starting it; pack --register sends it, and so does the consumer as its ROBOFLOW_API_KEY.

Point each side at it (URL: what serve prints, or the --ready-file):

  pack FAMILY --register --execute --registry-url URL    (or WEIGHTPACK_REGISTRY_URL_STAGING=URL)

  pack verify-remote ARCH/VARIANT --registry-url URL --out out/FAMILY

  ROBOFLOW_API_HOST=URL ROBOFLOW_API_KEY=$MODELS_SERVICE_INTERNAL_SECRET python my_app.py   (where my_app.py
  calls inference_models.AutoModel.from_pretrained("ARCH/VARIANT"); see docs/consumer.md)

pack registry list prints what a folder holds. Exit codes: 0 stopped (SIGTERM) or listed; 2 bad input (a
folder that is not a registry, a port in use); 3 environment (no MODELS_SERVICE_INTERNAL_SECRET); 130
interrupted (Ctrl-C), the state kept.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from packager import atomic
from packager.commands import verb_parser
from packager.errors import EXIT_OK, UsageError

DEFAULT_ROOT = Path("registry")


def build_parser() -> argparse.ArgumentParser:
    p = verb_parser("registry", __doc__)
    sub = p.add_subparsers(dest="action", required=True, metavar="{serve,list}")
    serve = sub.add_parser("serve", help="serve the registry in ROOT until stopped")
    serve.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="registry folder (default ./registry)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=9001, help="port (default 9001; 0: any free port)")
    serve.add_argument("--ready-file", type=Path, help="write the registry's URL here once it listens")
    listing = sub.add_parser("list", help="the models and packages a registry folder holds")
    listing.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help="registry folder (default ./registry)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "list":
        return list_registry(args.root, args.json)
    return serve(args)


def serve(args: argparse.Namespace) -> int:
    from packager.publish.secret import ENV_SECRET, secret_from_env

    from .server import RegistryServer

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port}: not a port (accepted: 0 to 65535; 0 picks a free one)")
    secret = secret_from_env()  # exit 3 with how to set it
    server = RegistryServer(secret.reveal(), root=args.root)
    try:
        server.bind(args.host, args.port)
    except OSError as exc:
        raise UsageError(
            f"--host {args.host} --port {args.port}: cannot listen ({exc.strerror or exc})"
        ) from None
    sealed = len(server.sealed())
    print(
        f"registry: serving {server.url} from {args.root} ({len(server.models)} models, {sealed} sealed "
        f"packages)\n"
        f"  pack:     --registry-url {server.url}   (or WEIGHTPACK_REGISTRY_URL_STAGING={server.url})\n"
        f"  consumer: ROBOFLOW_API_HOST={server.url} ROBOFLOW_API_KEY=${ENV_SECRET}\n"
        "  stop: Ctrl-C or SIGTERM",
        flush=True,
    )
    if args.ready_file:
        atomic.write_text(args.ready_file, server.url + "\n")
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        server.serve_forever()
    except _Stop:
        print("registry: stopped", flush=True)
        return EXIT_OK
    finally:
        server.stop()
    return EXIT_OK


class _Stop(Exception):
    """SIGTERM: stop serving (the state is on disk after every change)."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop


def list_registry(root: Path, as_json: bool) -> int:
    from .state import RegistryState

    if not (root / "registry.json").is_file():
        raise UsageError(f"--root {root}: no registry here (no registry.json); pack registry serve makes one")
    state = RegistryState(root)
    models = {
        model_id: {
            **{k: model.get(k) for k in ("modelArchitecture", "modelVariant", "taskType")},
            "packages": [_package(p) for p in state.packages.values() if p.model_id == model_id],
        }
        for model_id, model in sorted(state.models.items())
    }
    if as_json:
        print(json.dumps(models, indent=2))
        return EXIT_OK
    for model_id, model in models.items():
        print(f"{model_id} ({model['modelArchitecture']}, {model['taskType']})")
        for p in model["packages"]:
            sealed = "sealed" if p["sealed"] else "NOT sealed"
            print(f"  {p['package_id']} [{p['backend']}] {sealed}: {', '.join(p['files'])}")
    if not models:
        print(f"{root}: no models registered")
    return EXIT_OK


def _package(p: Any) -> dict[str, Any]:
    backend = p.manifest.get("backendType")
    return {"package_id": p.id, "backend": backend, "sealed": p.sealed, "files": p.handles}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
