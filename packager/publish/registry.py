"""Client for the models service (see docs/publish.md and the reference's "Registration flow").

Endpoints, relative to the environment's host:

- ``POST /models/v1/external/models/register`` {modelId, modelArchitecture, modelVariant, taskType, access};
  409 = the model exists already (fine).
- ``POST /models/v1/external/model-packages/register`` {modelId, packageManifest, fileHandles, modelFeatures}
  -> {modelId, modelPackageId, filesUploadSpecs: [{fileHandle, signedUrlDetails: {uploadUrl, method,
  extensionHeaders, maxFileSize}}]}; 409 = already registered.
- the upload of each file: ``method`` (PUT) to ``uploadUrl`` with ``extensionHeaders`` and no credentials.
- ``POST /models/v1/external/model-packages/artefacts/confirm`` {modelId, modelPackageId,
  confirmations: [{fileHandle, md5Hash}], sealModelPackage: true}.
- ``GET /models/v1/external/weights?modelId=ARCH/VARIANT`` -> {modelMetadata: {..., modelPackages, nextPage}}.

The secret goes only in ``Authorization: Bearer`` to the service host, never to signed upload URLs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from .http import RetryPolicy, send
from .secret import Secret

MODEL_REGISTER = "/models/v1/external/models/register"
PACKAGE_REGISTER = "/models/v1/external/model-packages/register"
CONFIRM = "/models/v1/external/model-packages/artefacts/confirm"
WEIGHTS = "/models/v1/external/weights"
MAX_PAGES = 100


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        secret: Secret,
        policy: RetryPolicy | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
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

    def register_model(self, body: dict[str, Any]) -> bool:
        """True when created, False when it existed already (409)."""
        r = self._call("POST", MODEL_REGISTER, f"register model {body['modelId']}", body, accept=(409,))
        return r.status_code != 409

    def register_package(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The service's answer, or None when it says the package is already registered (409)."""
        r = self._call(
            "POST", PACKAGE_REGISTER, f"register package of {body['modelId']}", body, accept=(409,)
        )
        return None if r.status_code == 409 else r.json()

    def upload(self, spec: dict[str, Any], path: Path, handle: str) -> None:
        details = spec["signedUrlDetails"]
        send(
            self.session,
            details.get("method", "PUT").upper(),
            details["uploadUrl"],
            what=f"upload {handle}",
            policy=self.policy,
            headers=dict(details.get("extensionHeaders") or {}),
            data_factory=lambda: open(path, "rb"),  # noqa: SIM115 -- closed by send()
            on_retry=self.on_retry,
        )

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
            meta = r.json()["modelMetadata"]
            if merged is None:
                merged = meta
            else:
                merged["modelPackages"].extend(meta.get("modelPackages", []))
            if not meta.get("nextPage"):
                break
            params["pageToken"] = str(meta["nextPage"])
        assert merged is not None
        merged["nextPage"] = None
        return merged
