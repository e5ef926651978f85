#!/usr/bin/env python3
"""Interop: the official Alibaba Cloud KMS Python SDKs against a running kmskit-server.

Runs the same scenario with
  - the legacy SDK (aliyun-python-sdk-core + aliyun-python-sdk-kms), V2 HMAC-SHA1 signatures,
  - the Tea SDK (alibabacloud-kms20160120) with its default V3 ACS3-HMAC-SHA256 signatures,
  - the Tea SDK with signature_algorithm="v2",
changing nothing but the endpoint. Environment:
  KMSKIT_ENDPOINT        127.0.0.1:PORT of the server under test
  KMSKIT_AK / KMSKIT_SK  an all-powerful access key
  KMSKIT_DENIED_ENDPOINT, KMSKIT_DENIED_AK, KMSKIT_DENIED_SK   (optional) a server and a key that may
                         call only DescribeKey/ListKeys: CreateKey must get Forbidden.NoPermission
Exits non-zero on the first failed check; prints one line per check.
"""

import base64
import json
import os
import sys

for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(var, None)

from aliyunsdkcore.client import AcsClient  # noqa: E402
from aliyunsdkcore.acs_exception.exceptions import ServerException  # noqa: E402
import aliyunsdkcore.utils.parameter_helper as legacy_helper  # noqa: E402
from aliyunsdkkms.request.v20160120 import (  # noqa: E402
    CreateAliasRequest,
    CreateKeyRequest,
    DecryptRequest,
    DescribeKeyRequest,
    DisableKeyRequest,
    EncryptRequest,
    GenerateDataKeyRequest,
    ListAliasesRequest,
    ListKeysRequest,
)

from alibabacloud_kms20160120.client import Client as TeaKmsClient  # noqa: E402
from alibabacloud_kms20160120 import models as tea_models  # noqa: E402
from alibabacloud_tea_openapi import models as open_api_models  # noqa: E402
from alibabacloud_tea_openapi.utils import Utils as TeaUtils  # noqa: E402
from Tea.exceptions import TeaException  # noqa: E402

ENDPOINT = os.environ["KMSKIT_ENDPOINT"]
AK = os.environ["KMSKIT_AK"]
SK = os.environ["KMSKIT_SK"]
CHECKS = 0


def ok(cond, what, detail=""):
    global CHECKS
    CHECKS += 1
    if not cond:
        print(f"FAIL {what} {detail}")
        sys.exit(1)
    print(f"ok   {what}")


class ApiError(Exception):
    def __init__(self, code, status, message):
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.status = status


# --- the two SDKs behind one small interface -------------------------------------------------------


class Legacy:
    """aliyun-python-sdk-kms: V2 signatures, every parameter in the query."""

    name = "legacy V2"

    def __init__(self, ak=AK, sk=SK, endpoint=ENDPOINT):
        self.client = AcsClient(ak, sk, "cn-hangzhou")
        self.endpoint = endpoint

    def _do(self, req):
        req.set_endpoint(self.endpoint)
        req.set_protocol_type("http")
        try:
            return json.loads(self.client.do_action_with_exception(req))
        except ServerException as e:
            raise ApiError(e.get_error_code(), e.get_http_status(), e.get_error_msg()) from None

    def create_key(self, description):
        r = CreateKeyRequest.CreateKeyRequest()
        r.set_Description(description)
        return self._do(r)["KeyMetadata"]

    def describe_key(self, key_id):
        r = DescribeKeyRequest.DescribeKeyRequest()
        r.set_KeyId(key_id)
        return self._do(r)["KeyMetadata"]

    def list_keys(self):
        r = ListKeysRequest.ListKeysRequest()
        r.set_PageSize(100)
        return self._do(r)

    def encrypt(self, key_id, plaintext, ctx=None):
        r = EncryptRequest.EncryptRequest()
        r.set_KeyId(key_id)
        r.set_Plaintext(plaintext)
        if ctx is not None:
            r.set_EncryptionContext(json.dumps(ctx))
        return self._do(r)

    def decrypt(self, blob, ctx=None):
        r = DecryptRequest.DecryptRequest()
        r.set_CiphertextBlob(blob)
        if ctx is not None:
            r.set_EncryptionContext(json.dumps(ctx))
        return self._do(r)

    def generate_data_key(self, key_id, ctx):
        r = GenerateDataKeyRequest.GenerateDataKeyRequest()
        r.set_KeyId(key_id)
        r.set_EncryptionContext(json.dumps(ctx))
        return self._do(r)

    def create_alias(self, alias, key_id):
        r = CreateAliasRequest.CreateAliasRequest()
        r.set_AliasName(alias)
        r.set_KeyId(key_id)
        return self._do(r)

    def list_aliases(self):
        r = ListAliasesRequest.ListAliasesRequest()
        r.set_PageSize(100)
        return self._do(r)

    def disable_key(self, key_id):
        r = DisableKeyRequest.DisableKeyRequest()
        r.set_KeyId(key_id)
        return self._do(r)

    @staticmethod
    def fixed_nonce(nonce):
        legacy_helper.get_uuid = lambda: nonce


_real_legacy_uuid = legacy_helper.get_uuid
_real_tea_nonce = TeaUtils.get_nonce


class Tea:
    """alibabacloud-kms20160120: V3 by default, or V2 with signature_algorithm='v2'."""

    def __init__(self, v2=False, ak=AK, sk=SK, endpoint=ENDPOINT):
        cfg = open_api_models.Config(
            access_key_id=ak,
            access_key_secret=sk,
            endpoint=endpoint,
            protocol="http",
            region_id="cn-hangzhou",
        )
        if v2:
            cfg.signature_algorithm = "v2"
        self.client = TeaKmsClient(cfg)
        self.name = "Tea V2" if v2 else "Tea V3"

    def _do(self, fn, req):
        try:
            return fn(req).body.to_map()
        except TeaException as e:
            status = getattr(e, "status_code", None) or getattr(e, "statusCode", None)
            raise ApiError(e.code, status, e.message) from None

    def create_key(self, description):
        return self._do(self.client.create_key, tea_models.CreateKeyRequest(description=description))["KeyMetadata"]

    def describe_key(self, key_id):
        return self._do(self.client.describe_key, tea_models.DescribeKeyRequest(key_id=key_id))["KeyMetadata"]

    def list_keys(self):
        return self._do(self.client.list_keys, tea_models.ListKeysRequest(page_size=100))

    def encrypt(self, key_id, plaintext, ctx=None):
        return self._do(
            self.client.encrypt,
            tea_models.EncryptRequest(key_id=key_id, plaintext=plaintext, encryption_context=ctx),
        )

    def decrypt(self, blob, ctx=None):
        return self._do(self.client.decrypt, tea_models.DecryptRequest(ciphertext_blob=blob, encryption_context=ctx))

    def generate_data_key(self, key_id, ctx):
        return self._do(
            self.client.generate_data_key,
            tea_models.GenerateDataKeyRequest(key_id=key_id, encryption_context=ctx),
        )

    def create_alias(self, alias, key_id):
        return self._do(self.client.create_alias, tea_models.CreateAliasRequest(alias_name=alias, key_id=key_id))

    def list_aliases(self):
        return self._do(self.client.list_aliases, tea_models.ListAliasesRequest(page_size=100))

    def disable_key(self, key_id):
        return self._do(self.client.disable_key, tea_models.DisableKeyRequest(key_id=key_id))

    @staticmethod
    def fixed_nonce(nonce):
        TeaUtils.get_nonce = staticmethod(lambda: nonce)


def restore_nonces():
    legacy_helper.get_uuid = _real_legacy_uuid
    TeaUtils.get_nonce = _real_tea_nonce


def expect_error(fn, code, status, what):
    try:
        fn()
    except ApiError as e:
        ok(e.code == code and (status is None or e.status is None or int(e.status) == status),
           what, f"got {e}")
        return e
    ok(False, what, "no error")


# --- the scenario ----------------------------------------------------------------------------------


def scenario(sdk, tag):
    n = sdk.name
    meta = sdk.create_key(f"interop key ({n})")
    key_id = meta["KeyId"]
    ok(meta["Description"] == f"interop key ({n})" and meta["KeyState"] == "Enabled", f"{n}: CreateKey with a description")

    enc = sdk.encrypt(key_id, "Hello KMS")
    ok(enc["KeyId"] == key_id and enc["CiphertextBlob"], f"{n}: Encrypt 'Hello KMS'")
    dec = sdk.decrypt(enc["CiphertextBlob"])
    ok(dec["Plaintext"] == "Hello KMS" and dec["KeyId"] == key_id, f"{n}: Decrypt returns 'Hello KMS'")

    ctx = {"purpose": "interop", "sdk": n}
    dk = sdk.generate_data_key(key_id, ctx)
    ok(len(base64.b64decode(dk["Plaintext"])) == 32, f"{n}: GenerateDataKey with a context (32 bytes)")
    back = sdk.decrypt(dk["CiphertextBlob"], ctx)
    ok(back["Plaintext"] == dk["Plaintext"], f"{n}: Decrypt of the data key returns the same Base64")
    expect_error(lambda: sdk.decrypt(dk["CiphertextBlob"], {"purpose": "other"}), "InvalidParameter", 400,
                 f"{n}: Decrypt with the wrong context is refused")

    d = sdk.describe_key(key_id)
    ok(d["KeyId"] == key_id and d["KeySpec"] == "Aliyun_AES_256", f"{n}: DescribeKey")
    keys = sdk.list_keys()
    ok(any(k["KeyId"] == key_id for k in keys["Keys"]["Key"]), f"{n}: ListKeys lists it")

    alias = f"alias/interop-{tag}"
    sdk.create_alias(alias, key_id)
    aliases = sdk.list_aliases()
    ok(any(a["AliasName"] == alias and a["KeyId"] == key_id for a in aliases["Aliases"]["Alias"]),
       f"{n}: CreateAlias + ListAliases")
    via = sdk.encrypt(alias, "via alias")
    ok(via["KeyId"] == key_id, f"{n}: Encrypt through the alias names the real key")
    ok(sdk.describe_key(alias)["KeyId"] == key_id, f"{n}: DescribeKey through the alias")
    expect_error(lambda: sdk.create_alias(alias, key_id), "AliasAlreadyExists", 400, f"{n}: duplicate alias")
    expect_error(lambda: sdk.describe_key("00000000-0000-4000-8000-000000000000"), "Forbidden.KeyNotFound", 404,
                 f"{n}: unknown key is Forbidden.KeyNotFound")

    sdk.disable_key(key_id)
    expect_error(lambda: sdk.encrypt(key_id, "Hello KMS"), "Rejected.Disabled", 409,
                 f"{n}: Encrypt on a disabled key raises Rejected.Disabled")

    # A replayed nonce: the same nonce twice (the SDK signs with a fresh timestamp, same nonce).
    nonce = f"kmskit-interop-replay-{tag}"
    type(sdk).fixed_nonce(nonce)
    try:
        sdk.list_keys()
        expect_error(lambda: sdk.list_keys(), "SignatureNonceUsed", 400, f"{n}: a replayed nonce is refused")
    finally:
        restore_nonces()


def wrong_secret(sdk_cls_and_args):
    cls, kwargs, name = sdk_cls_and_args
    sdk = cls(sk="definitely-wrong", **kwargs)
    try:
        sdk.list_keys()
    except ApiError as e:
        # The legacy SDK rewrites SignatureDoesNotMatch to InvalidAccessKeySecret when the server's string
        # to sign (in the message) equals its own: that is the proof the two agree on the string to sign.
        accepted = {"SignatureDoesNotMatch"} | ({"InvalidAccessKeySecret"} if cls is Legacy else set())
        ok(e.code in accepted, f"{name}: a wrong secret gets {e.code}", str(e))
        return
    ok(False, f"{name}: a wrong secret", "accepted")


def denied():
    ep = os.environ.get("KMSKIT_DENIED_ENDPOINT")
    if not ep:
        print("skip denied-action checks (KMSKIT_DENIED_ENDPOINT not set)")
        return
    ak, sk = os.environ["KMSKIT_DENIED_AK"], os.environ["KMSKIT_DENIED_SK"]
    for sdk in (Legacy(ak=ak, sk=sk, endpoint=ep), Tea(ak=ak, sk=sk, endpoint=ep), Tea(v2=True, ak=ak, sk=sk, endpoint=ep)):
        ok("Keys" in sdk.list_keys(), f"{sdk.name}: the restricted key may ListKeys")
        expect_error(lambda: sdk.create_key("nope"), "Forbidden.NoPermission", 403,
                     f"{sdk.name}: a denied action gets Forbidden.NoPermission")


def main():
    scenario(Legacy(), "legacy")
    scenario(Tea(), "tea3")
    scenario(Tea(v2=True), "tea2")
    for spec in ((Legacy, {}, "legacy V2"), (Tea, {}, "Tea V3"), (Tea, {"v2": True}, "Tea V2")):
        wrong_secret(spec)
    denied()
    print(f"interop: {CHECKS} passed, 0 failed")


if __name__ == "__main__":
    main()
