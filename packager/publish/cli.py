"""``pack`` flags for publishing (a PACK_EXTENSIONS module): after every check passed, upload the zips and
register the packages. Nothing happens without ``--upload`` or ``--register``; without ``--execute`` the
exact plan is printed and nothing changes (dry run is the default).

Registry hosts: ``--registry-url``, else ``$WEIGHTPACK_REGISTRY_URL_STAGING`` /
``$WEIGHTPACK_REGISTRY_URL_PRODUCTION``. ``--env production --execute`` also needs ``--yes``, and
``--register --env production --execute`` publishes only packages whose files ``pack verify-remote --env
staging`` verified (recorded in ``OUT/remote-verified.staging.json``; see ``staging.py``), unless
``--skip-staging-check``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any, TextIO

from packager.errors import EXIT_OK, UsageError
from packager.redact import redact_url

ENVIRONMENTS = ("staging", "production")
ENV_REGISTRY_URL = "WEIGHTPACK_REGISTRY_URL_{}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("publish (after all checks passed; see docs/publish.md)")
    group.add_argument("--upload", metavar="URL", help="store the zips at gs://BUCKET/PREFIX or file:///DIR")
    group.add_argument(
        "--register", action="store_true", help="register the packages with the models service"
    )
    group.add_argument("--env", choices=ENVIRONMENTS, default="staging", help="registry environment")
    group.add_argument(
        "--registry-url", metavar="URL", help="models service host (default: $WEIGHTPACK_REGISTRY_URL_<ENV>)"
    )
    group.add_argument("--access", choices=("public", "private"), default="public", help="model access")
    group.add_argument(
        "--skip-model-registration",
        action="store_true",
        help="do not register the model itself (it exists already); only its packages",
    )
    group.add_argument(
        "--model-register-path",
        metavar="PATH",
        help="model-registration endpoint (an assumption: no public client has it; default "
        "$WEIGHTPACK_MODEL_REGISTER_PATH or /models/v1/external/models/register; 'none' skips it)",
    )
    group.add_argument(
        "--execute", action="store_true", help="perform the plan (without it: print the plan, change nothing)"
    )
    group.add_argument("--dry-run", action="store_true", help="print the plan only (the default)")
    group.add_argument("--yes", action="store_true", help="approve --env production")
    group.add_argument("--force", action="store_true", help="replace a stored zip whose content differs")
    group.add_argument(
        "--skip-staging-check",
        action="store_true",
        help="DANGER: register in production packages that pack verify-remote never verified in staging",
    )


def registry_url_for(env: str, flag: str | None) -> str | None:
    url = flag or os.environ.get(ENV_REGISTRY_URL.format(env.upper()), "").strip() or None
    return url.rstrip("/") if url else None


def check_flags(args: argparse.Namespace) -> None:
    """Refuse contradictory or unapproved requests before anything is contacted."""
    if args.upload:
        from .storage import check_store_url

        check_store_url(args.upload)  # an unusable store URL must not cost a whole pack run first
    if args.execute and args.dry_run:
        raise UsageError("--execute and --dry-run contradict each other; pass one")
    if args.env == "production" and args.execute and not args.yes:
        raise UsageError(
            "--env production --execute needs --yes: publish to staging first, run pack verify-remote "
            "there, then approve production explicitly with --yes"
        )
    if args.register and args.execute and not registry_url_for(args.env, args.registry_url):
        raise UsageError(
            f"--register: no registry URL for {args.env}: pass --registry-url or set "
            f"{ENV_REGISTRY_URL.format(args.env.upper())}"
        )
    if args.register:
        from .registry import check_registry_url, model_register_path

        model_register_path(args.model_register_path, args.skip_model_registration)  # exit 2 if bad
        url = registry_url_for(args.env, args.registry_url)
        if url:  # a port out of range or a broken IPv6 literal failed only after the whole pack
            check_registry_url(
                url, "--registry-url" if args.registry_url else ENV_REGISTRY_URL.format(args.env.upper())
            )
    if getattr(args, "skip_staging_check", False) and not (args.register and args.env == "production"):
        raise UsageError("--skip-staging-check only applies to --register --env production")
    if staging_gate_applies(args):
        check_staging_selection(args)


def staging_gate_applies(args: argparse.Namespace) -> bool:
    """``--register --env production --execute`` without ``--skip-staging-check``."""
    return (
        args.register
        and args.env == "production"
        and args.execute
        and not args.dry_run
        and not getattr(args, "skip_staging_check", False)
    )


def check_staging_selection(args: argparse.Namespace) -> None:
    """Before packing: every selected variant/backend has a staging verification recorded in the out
    folder (the md5s are compared after the pack, before anything is sent)."""
    from .staging import backend_names, has_model, load, record_path, verify_command

    try:
        from packager.cli import recipe_dirs, resolve_family
        from packager.pipeline import select

        recipe = resolve_family(args.family, recipe_dirs(args))
        variants, backends = select(recipe, args.variants, args.backends)
    except Exception:  # the pack reports a bad selection itself; the md5 check after it still applies
        return
    out_dir = args.out or Path("out") / recipe.family
    record = load(out_dir)
    missing = [
        (f"{recipe.architecture}/{v}", b)
        for v in variants
        for b in backends
        if not has_model(record, f"{recipe.architecture}/{v}", backend_names(b))
    ]
    if missing:
        commands = "\n".join(f"  {verify_command(m, b, out_dir)}" for m, b in missing)
        raise UsageError(
            f"--register --env production: not verified in staging (no record in "
            f"{record_path(out_dir, 'staging')}): {', '.join(f'{m} [{b}]' for m, b in missing)}. "
            f"Register in staging and run first:\n{commands}\n"
            "(--skip-staging-check overrides this; do not use it for a routine release)"
        )


def staging_entries(plans: list[Any], out_dir: Path) -> dict[str, dict[str, Any] | None]:
    """{zip name: the staging record entry with exactly this package's file md5s, or None}."""
    from .staging import backend_names, load, verified_entry

    record = load(out_dir)
    return {
        p.zip_path.name: verified_entry(
            record,
            p.model_id,
            backend_names(p.backend, p.package_manifest.get("backendType")),
            {f["path"]: f["md5"] for f in p.files},
            p.manifest["zip"]["md5"],
        )
        for p in plans
    }


def check_staging_plans(plans: list[Any], entries: dict[str, dict[str, Any] | None], out_dir: Path) -> None:
    """After packing, before any upload or registration: each package's file md5s are the ones verified
    in staging; raises CheckFailedError naming the commands to run."""
    from packager.errors import CheckFailedError

    from .staging import record_path, verify_command

    refused = [p for p in plans if entries.get(p.zip_path.name) is None]
    if refused:
        lines = [
            f"  {p.model_id} [{p.backend}] {p.zip_path.name}: "
            f"{verify_command(p.model_id, p.package_manifest.get('backendType', p.backend), out_dir)}"
            for p in refused
        ]
        raise CheckFailedError(
            "--register --env production: these packages' files (md5) are not recorded as verified in "
            f"staging ({record_path(out_dir, 'staging')}); nothing was uploaded or registered. Register "
            "exactly these zips in staging, then run:\n" + "\n".join(lines) + "\n"
            "(a package rebuilt after its staging verification has different md5s and must be verified "
            "again; --skip-staging-check overrides this)"
        )


check_arguments = check_flags  # the CLI runs it before packing, so a bad flag costs no pack run


def after_pack(args: argparse.Namespace, report: dict[str, Any], out_dir: Path, ui: Any) -> int | None:
    if not (getattr(args, "upload", None) or getattr(args, "register", False)):
        return None
    return publish(args, report, Path(out_dir), sys.stderr if getattr(args, "json", False) else sys.stdout)


def publish(args: argparse.Namespace, report: dict[str, Any], out_dir: Path, out: TextIO) -> int:
    from .plan import collect, render
    from .storage import open_store

    def echo(message: str) -> None:
        print(message, file=out, flush=True)

    check_flags(args)
    plans = collect(report, out_dir, access=args.access)  # the gate: raises CheckFailedError
    execute = args.execute and not args.dry_run
    store = open_store(args.upload) if args.upload else None
    registry_url = registry_url_for(args.env, args.registry_url) if args.register else None
    secret = account = None
    if args.register and execute:
        from .secret import account_key, registry_secret, split_url_secret

        assert registry_url is not None
        call_url, secret = registry_secret(registry_url)  # before any upload: fail early, change nothing
        account = account_key(call_url, secret) if split_url_secret(registry_url)[1] else None
    skip_staging = bool(getattr(args, "skip_staging_check", False))
    staging_status: dict[str, str] | None = None
    if args.register and args.env == "production":
        entries = staging_entries(plans, out_dir)
        staging_status = {
            name: f"verified in staging ({e['registry_host']}, package {e['package_id']}, {e['verified_at']})"
            if e
            else "NOT verified in staging"
            for name, e in entries.items()
        }
        if staging_gate_applies(args):
            check_staging_plans(plans, entries, out_dir)  # before any upload or registration
    store_urls = {p.zip_path.name: store.url(p.zip_path.name) for p in plans} if store else {}
    echo(
        render(
            plans,
            upload=args.upload,
            store_urls=store_urls,
            register=args.register,
            env=args.env,
            registry_url=redact_url(registry_url) if registry_url else None,
            execute=execute,
            staging_status=staging_status,
        )
    )
    if skip_staging and args.register and args.env == "production":
        echo(
            "WARNING: --skip-staging-check: registering in production WITHOUT checking that pack "
            "verify-remote verified these packages in staging"
            + (" (recorded in the publish state)" if execute else "")
        )
    if not execute:
        if args.env == "production" and not args.yes:
            echo("note: executing against production also needs --yes")
        return EXIT_OK
    if store is not None:
        from .http import RetryPolicy
        from .storage import upload_zip

        timeout = RetryPolicy.from_env().timeout_s
        for p in plans:
            result = upload_zip(store, p.zip_path, p.manifest, force=args.force, timeout_s=timeout)
            what = {
                "unchanged": "already stored with identical content; not uploaded again",
                "uploaded": "uploaded, stored md5/crc32c verified",
                "replaced": "replaced (--force), stored md5/crc32c verified",
            }[result.action]
            public = {"ok": "; public URL answers 200", "not public": "; bucket not public", "n/a": ""}
            echo(f"{p.zip_path.name} -> {result.url}: {what}{public[result.public]}")
    if args.register:
        from .http import RetryPolicy
        from .register import State, register_package, state_path
        from .registry import RegistryClient

        assert registry_url is not None and secret is not None
        from .registry import model_register_path

        client = RegistryClient(
            call_url,
            secret,
            RetryPolicy.from_env(),
            on_retry=echo,
            model_register=model_register_path(args.model_register_path, args.skip_model_registration),
            account=account,
        )
        state = State(state_path(out_dir, args.env))
        hint = resume_command(args)
        for p in plans:
            if args.env == "production":
                from datetime import datetime, timezone

                state.entry(client.state_key, p)["staging_check"] = {
                    "result": "skipped (--skip-staging-check)"
                    if skip_staging
                    else (staging_status or {}).get(p.zip_path.name, ""),
                    "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                state.save()
            register_package(p, client, state, echo, hint)
        echo(f"registered in {args.env}; check it as a consumer would with:")
        for command in dict.fromkeys(verify_remote_command(args, p.model_id, out_dir) for p in plans):
            echo(f"  {command}")
    return EXIT_OK


def verify_remote_command(args: argparse.Namespace, model_id: str, out_dir: Path) -> str:
    """The ``pack verify-remote`` command that checks what was just registered (it runs as printed: the
    registry URL is given when it came from the flag, credentials in it masked)."""
    parts = ["pack", "verify-remote", model_id, "--env", args.env, "--out", str(out_dir)]
    if args.registry_url:
        parts += ["--registry-url", redact_url(args.registry_url)]
    return shlex.join(parts)


def resume_command(args: argparse.Namespace) -> str:
    """The pack command that resumes this run (zips are reused, finished steps skipped)."""
    parts = ["pack", getattr(args, "family", None) or "FAMILY"]
    for flag in ("variants", "backends"):
        if getattr(args, flag, None):
            parts += [f"--{flag}", ",".join(getattr(args, flag))]
    if getattr(args, "out", None):
        parts += ["--out", str(args.out)]
    if args.upload:
        parts += ["--upload", redact_url(args.upload)]
    parts += ["--register", "--env", args.env]
    if args.registry_url:  # credentials in it are masked: pass them again (or use the environment)
        parts += ["--registry-url", redact_url(args.registry_url)]
    parts += ["--execute"] + (["--yes"] if args.yes else [])
    if getattr(args, "skip_staging_check", False):
        parts += ["--skip-staging-check"]
    if getattr(args, "skip_model_registration", False):
        parts += ["--skip-model-registration"]
    if getattr(args, "model_register_path", None):
        parts += ["--model-register-path", args.model_register_path]
    return shlex.join(parts)
