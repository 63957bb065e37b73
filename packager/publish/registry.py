"""Client for the models service (see docs/publish.md and the reference's "Registration flow").

Endpoints, relative to the environment's host:

- ``POST /models/v1/external/models/register`` {modelId, modelArchitecture, modelVariant, taskType, access};
  409 = the model exists already (fine). ASSUMPTION: this endpoint is in no public client (the SDK that has
  it is private), so its path is configurable (``model_register_path``; ``$WEIGHTPACK_MODEL_REGISTER_PATH``)
  and the step is skipped when it is ``None`` (the model exists already; ``--skip-model-registration``).
- ``POST /models/v1/external/model-packages/register`` {modelId, packageManifest, fileHandles, modelFeatures}
  -> {modelId, modelPackageId, filesUploadSpecs: [{type: "external-file-upload-specs-v1", fileHandle,
  signedUrlDetails: {type: "signed-url-details-v1", uploadUrl, method, extensionHeaders, maxFileSize}}]};
  409 = already registered. The ``type`` fields are required, as the public client (inference-cli) does.
- the upload of each file: ``method`` (PUT) to ``uploadUrl`` with ``extensionHeaders`` and no credentials.
- ``POST /models/v1/external/model-packages/artefacts/confirm`` {modelId, modelPackageId,
  confirmations: [{fileHandle, md5Hash}], sealModelPackage: true}.
- ``GET /models/v1/external/weights?modelId=ARCH/VARIANT[&startAfter=NEXT]`` -> {modelMetadata: {...,
  modelPackages, nextPage}}; the next page is asked for with ``startAfter=<nextPage>``, as the consumer does.

The secret goes only in ``Authorization: Bearer`` to the service host, never to signed upload URLs.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from packager.redact import redact_url

from .errors import PublishError, PublishInputError, RegistryAnswerError
from .http import RetryPolicy, send
from .secret import Secret


def model_register_path(flag: str | None = None, skip: bool = False) -> str | None:
    """The model-registration endpoint: ``None`` when skipped (``--skip-model-registration``, or the
    flag / ``$WEIGHTPACK_MODEL_REGISTER_PATH`` set to ``none``), else the flag, the variable or the
    assumed default. PublishInputError (exit 2) naming where a malformed path came from: ``pack`` checks it
    with the other publish flags, before packing, so it costs no pack run and no upload."""
    if skip:
        return None
    env = os.environ.get(ENV_MODEL_REGISTER_PATH, "").strip()
    source = "--model-register-path" if flag else f"${ENV_MODEL_REGISTER_PATH}"
    path = (flag or env or MODEL_REGISTER).strip()
    if path.lower() == "none":
        return None
    if not path.startswith("/") or any(c.isspace() or c in "?#" for c in path):
        raise PublishInputError(
            f"model registration path {path!r} must start with '/' and hold no spaces, query or fragment "
            f"(from {source}; accepted: a path such as {MODEL_REGISTER}, or 'none' to skip the step)"
        )
    return path


def check_registry_url(url: str, source: str) -> None:
    """The registry URL (from ``source``: the flag or the environment variable) before anything is packed
    or sent: https (plain http only to a loopback host: the secret travels in a header), a host and a valid
    port, no spaces, query or fragment. PublishInputError (exit 2) naming what is wrong."""
    from urllib.parse import urlsplit

    accepted = "https://HOST[:PORT][/PATH] (http:// for a loopback host only), credentials optional"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a port out of range
    except ValueError as exc:  # a broken IPv6 literal, a port out of range
        raise PublishInputError(
            f"{source} {redact_url(url)!r}: not a URL ({exc}; accepted: {accepted})"
        ) from None
    problem = None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        problem = "not an http(s) URL with a host"
    elif parts.scheme == "http" and not _loopback(parts.hostname):
        problem = "plain http:// would send the service secret in clear to a remote host"
    elif parts.query or parts.fragment or any(c.isspace() or ord(c) < 0x20 for c in url):
        problem = "holds a query, a fragment, spaces or control characters"
    if problem:
        raise PublishInputError(f"{source} {redact_url(url)!r}: {problem} (accepted: {accepted})")


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


MODEL_REGISTER = "/models/v1/external/models/register"
ENV_MODEL_REGISTER_PATH = "WEIGHTPACK_MODEL_REGISTER_PATH"
UPLOAD_SPEC_TYPE = "external-file-upload-specs-v1"
SIGNED_URL_TYPE = "signed-url-details-v1"
PACKAGE_REGISTER = "/models/v1/external/model-packages/register"
CONFIRM = "/models/v1/external/model-packages/artefacts/confirm"
WEIGHTS = "/models/v1/external/weights"
MAX_PAGES = 100


def stored_md5(headers: Any) -> str | None:
    """The stored object's md5 (hex) from an upload answer: GCS's ``x-goog-hash: md5=<base64>``, else an
    ETag holding an md5 (hex, or base64 of the 16 bytes); None when neither says."""
    candidates = []
    for part in str(headers.get("x-goog-hash") or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == "md5":
            candidates.append(value)
    candidates.append(str(headers.get("ETag") or "").strip('"'))
    for value in candidates:
        if re.fullmatch(r"[0-9a-fA-F]{32}", value):
            return value.lower()
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 16:
            return raw.hex()
    return None


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        secret: Secret,
        policy: RetryPolicy | None = None,
        on_retry: Callable[[str], None] | None = None,
        model_register: str | None = MODEL_REGISTER,
        account: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_register = model_register
        self.display_url = redact_url(self.base_url)  # what may be printed or recorded
        # the publish state's key: the host, plus a tag of the secret when the URL carried one, so two
        # URLs that differ only in their masked credentials do not share resume state
        self.state_key = self.display_url + (f"#account-{account}" if account else "")
        self.secret = secret
        self.policy = policy or RetryPolicy.from_env()
        self.on_retry = on_retry
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or .netrc credentials mixed into service calls

    def _call(self, method: str, path: str, what: str, body: Any = None, accept: tuple[int, ...] = ()) -> Any:
        return send(
            self.session,
            method,
            self.base_url + path,
            what=what,
            policy=self.policy,
            secret=self.secret,
            json_body=body,
            accept=accept,
            on_retry=self.on_retry,
        )

    def register_model(self, body: dict[str, Any]) -> bool | None:
        """True when created, False when it existed already (409), None when the step is skipped."""
        if self.model_register is None:
            return None
        r = self._call("POST", self.model_register, f"register model {body['modelId']}", body, accept=(409,))
        return r.status_code != 409

    def register_package(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The service's answer, or None when it says the package is already registered (409)."""
        r = self._call(
            "POST", PACKAGE_REGISTER, f"register package of {body['modelId']}", body, accept=(409,)
        )
        if r.status_code == 409:
            return None
        answer = r.json()
        check_upload_specs(answer)
        return answer

    def upload(self, spec: dict[str, Any], path: Path, handle: str) -> str | None:
        """PUT one file to its signed URL; returns the md5 (hex) the store reports for what it stored,
        None when the answer carries none."""
        details = spec["signedUrlDetails"]
        response = send(
            self.session,
            details.get("method", "PUT").upper(),
            details["uploadUrl"],
            what=f"upload {handle}",
            policy=self.policy,
            headers=dict(details.get("extensionHeaders") or {}),
            data_factory=lambda: open(path, "rb"),  # noqa: SIM115 -- closed by send()
            on_retry=self.on_retry,
        )
        return stored_md5(response.headers)

    def confirm(self, model_id: str, package_id: str, confirmations: list[dict[str, str]]) -> dict[str, Any]:
        body = {
            "modelId": model_id,
            "modelPackageId": package_id,
            "confirmations": confirmations,
            "sealModelPackage": True,
        }
        r = self._call("POST", CONFIRM, f"confirm and seal {model_id} package {package_id}", body)
        return r.json() if r.content else {}

    def weights(self, model_id: str) -> dict[str, Any]:
        """The model's metadata with every page's packages merged."""
        params: dict[str, str] = {"modelId": model_id}
        merged: dict[str, Any] | None = None
        for _ in range(MAX_PAGES):
            r = self._call("GET", f"{WEIGHTS}?{urlencode(params)}", f"resolve {model_id}")
            meta = weights_metadata(r, f"the registry's answer for {model_id}")
            if merged is None:
                merged = meta
            else:
                merged["modelPackages"].extend(meta.get("modelPackages", []))
            if not meta.get("nextPage"):
                break
            params["startAfter"] = str(meta["nextPage"])
        assert merged is not None
        merged["nextPage"] = None
        return merged


def weights_metadata(response: requests.Response, what: str) -> dict[str, Any]:
    """``modelMetadata`` of a weights answer, once its shape is the documented one as far as it is read:
    objects where objects belong, lists of objects for the packages and their files, string file handles.
    RegistryAnswerError (exit 2) naming the first field that is not."""
    try:
        answer = response.json()
    except (ValueError, RecursionError) as exc:
        raise RegistryAnswerError(f"{what} is not JSON a client can read ({type(exc).__name__})") from None

    def need(value: Any, kind: type, where: str) -> Any:
        if not isinstance(value, kind):
            names = {dict: "an object", list: "a list", str: "a string"}
            found = names.get(type(value), type(value).__name__)
            raise RegistryAnswerError(f"{what}: {where} is {found}, not {names[kind]}")
        return value

    meta = need(need(answer, dict, "the answer").get("modelMetadata"), dict, "modelMetadata")
    for i, package in enumerate(need(meta.get("modelPackages", []), list, "modelMetadata.modelPackages")):
        where = f"modelMetadata.modelPackages[{i}]"
        need(package, dict, where)
        need(package.get("packageManifest") or {}, dict, f"{where}.packageManifest")
        for j, record in enumerate(need(package.get("packageFiles") or [], list, f"{where}.packageFiles")):
            need(record, dict, f"{where}.packageFiles[{j}]")
            need(record.get("fileHandle", ""), str, f"{where}.packageFiles[{j}].fileHandle")
    return meta


def check_upload_specs(answer: Any) -> None:
    """Hold a registration answer to what the public client requires; PublishError naming the field."""
    specs = answer.get("filesUploadSpecs") if isinstance(answer, dict) else None
    if not isinstance(specs, list):
        raise PublishError("the registration answer has no filesUploadSpecs list")
    for i, spec in enumerate(specs):
        where = f"filesUploadSpecs[{i}]"
        details = spec.get("signedUrlDetails") if isinstance(spec, dict) else None
        for field, got, expected in (
            (f"{where}.type", spec.get("type") if isinstance(spec, dict) else None, UPLOAD_SPEC_TYPE),
            (f"{where}.signedUrlDetails.type", (details or {}).get("type"), SIGNED_URL_TYPE),
        ):
            if got != expected:
                raise PublishError(
                    f"the registration answer's {field}: expected {expected!r}, got {got!r} "
                    "(the public client refuses such an answer)"
                )
        if not isinstance(details, dict) or not details.get("uploadUrl"):
            raise PublishError(f"the registration answer's {where}.signedUrlDetails has no uploadUrl")
