#!/usr/bin/env python3
"""Interop: the official Alibaba Cloud KMS Python SDKs against a running kmskit-server.

Runs the same scenario with
  - the legacy SDK (aliyun-python-sdk-core + aliyun-python-sdk-kms), V2 HMAC-SHA1 signatures,
  - the Tea SDK (alibabacloud-kms20160120) with its default V3 ACS3-HMAC-SHA256 signatures,
  - the Tea SDK with signature_algorithm="v2",
changing nothing but the endpoint; with each of them also the asymmetric actions (EC_P256 and RSA_2048
signatures verified by Python `cryptography` with the PEM from GetPublicKey, RSA_2048 OAEP encryption
made by `cryptography` and decrypted by the server). Environment:
  KMSKIT_ENDPOINT        127.0.0.1:PORT of the server under test
  KMSKIT_AK / KMSKIT_SK  an all-powerful access key
  KMSKIT_DENIED_ENDPOINT, KMSKIT_DENIED_AK, KMSKIT_DENIED_SK   (optional) a server and a key that may
                         call only DescribeKey/ListKeys: CreateKey must get Forbidden.NoPermission
  KMSKIT_DENIED_IDS      (optional) a file to write the denied calls' RequestIds to, one a line, for
                         the caller to find in the server's audit trail
Exits non-zero on the first failed check; prints one line per check.
"""

import base64
import hashlib
import json
import os
import sys

for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
    os.environ.pop(var, None)

from aliyunsdkcore.client import AcsClient  # noqa: E402
from aliyunsdkcore.acs_exception.exceptions import ServerException  # noqa: E402
import aliyunsdkcore.utils.parameter_helper as legacy_helper  # noqa: E402
from aliyunsdkkms.request.v20160120 import (  # noqa: E402
    AsymmetricDecryptRequest,
    AsymmetricEncryptRequest,
    AsymmetricSignRequest,
    AsymmetricVerifyRequest,
    CreateAliasRequest,
    CreateKeyRequest,
    CreateKeyVersionRequest,
    DecryptRequest,
    DescribeKeyRequest,
    DescribeKeyVersionRequest,
    DisableKeyRequest,
    EncryptRequest,
    GenerateDataKeyRequest,
    GetPublicKeyRequest,
    ListAliasesRequest,
    ListKeysRequest,
    ListKeyVersionsRequest,
    UpdateRotationPolicyRequest,
)

from alibabacloud_kms20160120.client import Client as TeaKmsClient  # noqa: E402
from alibabacloud_kms20160120 import models as tea_models  # noqa: E402
from alibabacloud_tea_openapi import models as open_api_models  # noqa: E402
from alibabacloud_tea_openapi.utils import Utils as TeaUtils  # noqa: E402
from Tea.exceptions import TeaException  # noqa: E402

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils as asym_utils  # noqa: E402

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
    def __init__(self, code, status, message, request_id=None):
        super().__init__(f"{code} ({status}): {message}")
        self.code = code
        self.status = status
        self.request_id = request_id


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
            raise ApiError(e.get_error_code(), e.get_http_status(), e.get_error_msg(), e.get_request_id()) from None

    def create_key(self, description, spec=None, usage=None):
        r = CreateKeyRequest.CreateKeyRequest()
        r.set_Description(description)
        if spec is not None:
            r.set_KeySpec(spec)
        if usage is not None:
            r.set_KeyUsage(usage)
        return self._do(r)["KeyMetadata"]

    def _asym(self, r, key_id, version, algorithm=None):
        r.set_KeyId(key_id)
        r.set_KeyVersionId(version)
        if algorithm is not None:
            r.set_Algorithm(algorithm)
        return r

    def asymmetric_sign(self, key_id, version, algorithm, digest_b64):
        r = self._asym(AsymmetricSignRequest.AsymmetricSignRequest(), key_id, version, algorithm)
        r.set_Digest(digest_b64)
        return self._do(r)

    def asymmetric_verify(self, key_id, version, algorithm, digest_b64, value_b64):
        r = self._asym(AsymmetricVerifyRequest.AsymmetricVerifyRequest(), key_id, version, algorithm)
        r.set_Digest(digest_b64)
        r.set_Value(value_b64)
        return self._do(r)

    def asymmetric_encrypt(self, key_id, version, algorithm, plaintext_b64):
        r = self._asym(AsymmetricEncryptRequest.AsymmetricEncryptRequest(), key_id, version, algorithm)
        r.set_Plaintext(plaintext_b64)
        return self._do(r)

    def asymmetric_decrypt(self, key_id, version, algorithm, blob_b64):
        r = self._asym(AsymmetricDecryptRequest.AsymmetricDecryptRequest(), key_id, version, algorithm)
        r.set_CiphertextBlob(blob_b64)
        return self._do(r)

    def get_public_key(self, key_id, version):
        return self._do(self._asym(GetPublicKeyRequest.GetPublicKeyRequest(), key_id, version))

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

    def create_key_version(self, key_id):
        r = CreateKeyVersionRequest.CreateKeyVersionRequest()
        r.set_KeyId(key_id)
        return self._do(r)["KeyVersion"]

    def update_rotation_policy(self, key_id, enable, interval=None):
        r = UpdateRotationPolicyRequest.UpdateRotationPolicyRequest()
        r.set_KeyId(key_id)
        r.set_EnableAutomaticRotation(enable)
        if interval is not None:
            r.set_RotationInterval(interval)
        return self._do(r)

    def list_key_versions(self, key_id):
        r = ListKeyVersionsRequest.ListKeyVersionsRequest()
        r.set_KeyId(key_id)
        r.set_PageSize(100)
        return self._do(r)

    def describe_key_version(self, key_id, version_id):
        r = DescribeKeyVersionRequest.DescribeKeyVersionRequest()
        r.set_KeyId(key_id)
        r.set_KeyVersionId(version_id)
        return self._do(r)["KeyVersion"]

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
            data = e.data if isinstance(e.data, dict) else {}
            raise ApiError(e.code, status, e.message, data.get("RequestId")) from None

    def create_key(self, description, spec=None, usage=None):
        return self._do(
            self.client.create_key,
            tea_models.CreateKeyRequest(description=description, key_spec=spec, key_usage=usage),
        )["KeyMetadata"]

    def asymmetric_sign(self, key_id, version, algorithm, digest_b64):
        return self._do(
            self.client.asymmetric_sign,
            tea_models.AsymmetricSignRequest(
                key_id=key_id, key_version_id=version, algorithm=algorithm, digest=digest_b64
            ),
        )

    def asymmetric_verify(self, key_id, version, algorithm, digest_b64, value_b64):
        return self._do(
            self.client.asymmetric_verify,
            tea_models.AsymmetricVerifyRequest(
                key_id=key_id, key_version_id=version, algorithm=algorithm, digest=digest_b64, value=value_b64
            ),
        )

    def asymmetric_encrypt(self, key_id, version, algorithm, plaintext_b64):
        return self._do(
            self.client.asymmetric_encrypt,
            tea_models.AsymmetricEncryptRequest(
                key_id=key_id, key_version_id=version, algorithm=algorithm, plaintext=plaintext_b64
            ),
        )

    def asymmetric_decrypt(self, key_id, version, algorithm, blob_b64):
        return self._do(
            self.client.asymmetric_decrypt,
            tea_models.AsymmetricDecryptRequest(
                key_id=key_id, key_version_id=version, algorithm=algorithm, ciphertext_blob=blob_b64
            ),
        )

    def get_public_key(self, key_id, version):
        return self._do(
            self.client.get_public_key, tea_models.GetPublicKeyRequest(key_id=key_id, key_version_id=version)
        )

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

    def create_key_version(self, key_id):
        return self._do(self.client.create_key_version, tea_models.CreateKeyVersionRequest(key_id=key_id))["KeyVersion"]

    def update_rotation_policy(self, key_id, enable, interval=None):
        return self._do(
            self.client.update_rotation_policy,
            tea_models.UpdateRotationPolicyRequest(
                key_id=key_id, enable_automatic_rotation=enable, rotation_interval=interval
            ),
        )

    def list_key_versions(self, key_id):
        return self._do(self.client.list_key_versions, tea_models.ListKeyVersionsRequest(key_id=key_id, page_size=100))

    def describe_key_version(self, key_id, version_id):
        return self._do(
            self.client.describe_key_version,
            tea_models.DescribeKeyVersionRequest(key_id=key_id, key_version_id=version_id),
        )["KeyVersion"]

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

    rotation(sdk, key_id, enc["CiphertextBlob"], dk, ctx)

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


def rotation(sdk, key_id, old_blob, old_dk, ctx):
    """CreateKeyVersion, UpdateRotationPolicy, ListKeyVersions, DescribeKeyVersion; old ciphertexts still decrypt."""
    n = sdk.name
    v1 = sdk.describe_key(key_id)["PrimaryKeyVersion"]
    kv = sdk.create_key_version(key_id)
    v2 = kv["KeyVersionId"]
    ok(kv["KeyId"] == key_id and v2 and v2 != v1 and kv["CreationDate"], f"{n}: CreateKeyVersion makes a new version")
    d = sdk.describe_key(key_id)
    ok(d["PrimaryKeyVersion"] == v2 and d.get("LastRotationDate"), f"{n}: DescribeKey shows the new primary version",
       str(d))
    versions = sdk.list_key_versions(key_id)
    ids = [v["KeyVersionId"] for v in versions["KeyVersions"]["KeyVersion"]]
    ok(versions["TotalCount"] == 2 and set(ids) == {v1, v2}, f"{n}: ListKeyVersions lists both versions", str(versions))
    ok(sdk.describe_key_version(key_id, v1)["KeyVersionId"] == v1, f"{n}: DescribeKeyVersion of the old version")
    expect_error(lambda: sdk.describe_key_version(key_id, "00000000-0000-4000-8000-000000000000"),
                 "Forbidden.KeyVersionNotFound", 404, f"{n}: unknown version is Forbidden.KeyVersionNotFound")

    old = sdk.decrypt(old_blob)
    ok(old["Plaintext"] == "Hello KMS" and old["KeyVersionId"] == v1, f"{n}: a ciphertext of the old version decrypts")
    back = sdk.decrypt(old_dk["CiphertextBlob"], ctx)
    ok(back["Plaintext"] == old_dk["Plaintext"], f"{n}: an old data key decrypts")
    new = sdk.encrypt(key_id, "after rotation")
    ok(new["KeyVersionId"] == v2 and sdk.decrypt(new["CiphertextBlob"])["Plaintext"] == "after rotation",
       f"{n}: Encrypt uses the new primary version")

    sdk.update_rotation_policy(key_id, True, "7d")
    d = sdk.describe_key(key_id)
    ok(d["AutomaticRotation"] == "Enabled" and d["RotationInterval"] == "604800s" and d.get("NextRotationDate"),
       f"{n}: UpdateRotationPolicy 7d is shown as 604800s with a NextRotationDate", str(d))
    sdk.update_rotation_policy(key_id, True, "31536000s")
    ok(sdk.describe_key(key_id)["RotationInterval"] == "31536000s", f"{n}: UpdateRotationPolicy 31536000s")
    expect_error(lambda: sdk.update_rotation_policy(key_id, True, "1d"), "InvalidParameter", 400,
                 f"{n}: a rotation interval under 7 days is refused")
    sdk.update_rotation_policy(key_id, False)
    d = sdk.describe_key(key_id)
    ok(d["AutomaticRotation"] == "Disabled" and not d.get("RotationInterval"), f"{n}: UpdateRotationPolicy off", str(d))


def only_version(sdk, key_id):
    versions = sdk.list_key_versions(key_id)
    items = versions["KeyVersions"]["KeyVersion"]
    ok(versions["TotalCount"] == 1 and len(items) == 1, f"{sdk.name}: ListKeyVersions of a new asymmetric key lists one version",
       str(versions))
    return items[0]["KeyVersionId"]


def asymmetric(sdk):
    """EC_P256 SIGN/VERIFY and RSA_2048 ENCRYPT/DECRYPT keys; every signature and ciphertext is checked
    with Python `cryptography` and the PEM from GetPublicKey, not only by the server itself."""
    n = sdk.name
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731

    # EC_P256, SIGN/VERIFY.
    meta = sdk.create_key(f"interop EC_P256 ({n})", "EC_P256", "SIGN/VERIFY")
    ec_id = meta["KeyId"]
    ok(meta["KeySpec"] == "EC_P256" and meta["KeyUsage"] == "SIGN/VERIFY" and not meta.get("PrimaryKeyVersion"),
       f"{n}: CreateKey EC_P256 SIGN/VERIFY (no primary version)", str(meta))
    ec_v = only_version(sdk, ec_id)
    message = f"signed by kmskit through {n}".encode()
    digest = hashlib.sha256(message).digest()
    sig = sdk.asymmetric_sign(ec_id, ec_v, "ECDSA_SHA_256", b64(digest))
    ok(sig["KeyId"] == ec_id and sig["KeyVersionId"] == ec_v and sig["Value"], f"{n}: AsymmetricSign ECDSA_SHA_256")
    pk = sdk.get_public_key(ec_id, ec_v)
    pem = pk["PublicKey"]
    ok(pk["KeyId"] == ec_id and pk["KeyVersionId"] == ec_v and pem.startswith("-----BEGIN PUBLIC KEY-----"),
       f"{n}: GetPublicKey returns a PEM SubjectPublicKeyInfo")
    public = serialization.load_pem_public_key(pem.encode())
    ok(isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1",
       f"{n}: the PEM is a P-256 public key")
    der_sig = base64.b64decode(sig["Value"])
    try:
        public.verify(der_sig, digest, ec.ECDSA(asym_utils.Prehashed(hashes.SHA256())))
        public.verify(der_sig, message, ec.ECDSA(hashes.SHA256()))
        verified = True
    except InvalidSignature:
        verified = False
    ok(verified, f"{n}: Python cryptography verifies kmskit's ECDSA signature with the PEM")
    v = sdk.asymmetric_verify(ec_id, ec_v, "ECDSA_SHA_256", b64(digest), sig["Value"])
    ok(v["Value"] is True and v["KeyVersionId"] == ec_v, f"{n}: AsymmetricVerify is true (a JSON boolean)", str(v))
    other = hashlib.sha256(b"another message").digest()
    v = sdk.asymmetric_verify(ec_id, ec_v, "ECDSA_SHA_256", b64(other), sig["Value"])
    ok(v["Value"] is False, f"{n}: AsymmetricVerify of another digest is false", str(v))
    # A signature made by Python with some other key: false.
    stranger = ec.generate_private_key(ec.SECP256R1()).sign(digest, ec.ECDSA(asym_utils.Prehashed(hashes.SHA256())))
    v = sdk.asymmetric_verify(ec_id, ec_v, "ECDSA_SHA_256", b64(digest), b64(stranger))
    ok(v["Value"] is False, f"{n}: AsymmetricVerify of another key's signature is false", str(v))
    expect_error(lambda: sdk.asymmetric_sign(ec_id, ec_v, "RSA_PSS_SHA_256", b64(digest)),
                 "Rejected.UnsupportedOperation", 400, f"{n}: AsymmetricSign with an RSA algorithm on EC_P256")
    expect_error(lambda: sdk.asymmetric_encrypt(ec_id, ec_v, "RSAES_OAEP_SHA_256", b64(b"x")),
                 "Rejected.UnsupportedOperation", 400, f"{n}: AsymmetricEncrypt with a SIGN/VERIFY key")
    expect_error(lambda: sdk.asymmetric_sign(ec_id, ec_v, "ECDSA_SHA_256", b64(digest[:20])),
                 "InvalidParameter", 400, f"{n}: a 20-byte digest is refused")
    expect_error(lambda: sdk.get_public_key(ec_id, "00000000-0000-4000-8000-000000000000"),
                 "Forbidden.KeyVersionNotFound", 404, f"{n}: an unknown version is Forbidden.KeyVersionNotFound")

    # RSA_2048, SIGN/VERIFY: PSS (salt 32, MGF1-SHA-256) and PKCS#1 v1.5, verified by Python.
    meta = sdk.create_key(f"interop RSA_2048 signer ({n})", "RSA_2048", "SIGN/VERIFY")
    rsig_id = meta["KeyId"]
    rsig_v = only_version(sdk, rsig_id)
    rsig_public = serialization.load_pem_public_key(sdk.get_public_key(rsig_id, rsig_v)["PublicKey"].encode())
    for alg, pad in (
        ("RSA_PSS_SHA_256", padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)),
        ("RSA_PKCS1_SHA_256", padding.PKCS1v15()),
    ):
        sig = sdk.asymmetric_sign(rsig_id, rsig_v, alg, b64(digest))
        raw = base64.b64decode(sig["Value"])
        try:
            rsig_public.verify(raw, message, pad, hashes.SHA256())
            verified = len(raw) == 256
        except InvalidSignature:
            verified = False
        ok(verified, f"{n}: Python cryptography verifies kmskit's {alg} signature with the PEM")
        v = sdk.asymmetric_verify(rsig_id, rsig_v, alg, b64(digest), sig["Value"])
        ok(v["Value"] is True, f"{n}: AsymmetricVerify {alg} is true", str(v))

    # RSA_2048, ENCRYPT/DECRYPT.
    meta = sdk.create_key(f"interop RSA_2048 ({n})", "RSA_2048", "ENCRYPT/DECRYPT")
    rsa_id = meta["KeyId"]
    ok(meta["KeySpec"] == "RSA_2048" and meta["KeyUsage"] == "ENCRYPT/DECRYPT", f"{n}: CreateKey RSA_2048 ENCRYPT/DECRYPT")
    rsa_v = only_version(sdk, rsa_id)
    plaintext = f"secret for {n}".encode()
    for alg in ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"):
        e = sdk.asymmetric_encrypt(rsa_id, rsa_v, alg, b64(plaintext))
        ok(e["KeyVersionId"] == rsa_v and len(base64.b64decode(e["CiphertextBlob"])) == 256,
           f"{n}: AsymmetricEncrypt {alg} (one 2048-bit block)")
        d = sdk.asymmetric_decrypt(rsa_id, rsa_v, alg, e["CiphertextBlob"])
        ok(base64.b64decode(d["Plaintext"]) == plaintext and d["KeyVersionId"] == rsa_v,
           f"{n}: AsymmetricDecrypt {alg} round trip")
    rsa_pem = sdk.get_public_key(rsa_id, rsa_v)["PublicKey"]
    rsa_public = serialization.load_pem_public_key(rsa_pem.encode())
    ok(rsa_public.key_size == 2048, f"{n}: GetPublicKey of RSA_2048 is a 2048-bit key")
    outside = rsa_public.encrypt(
        b"encrypted by Python", padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    )
    d = sdk.asymmetric_decrypt(rsa_id, rsa_v, "RSAES_OAEP_SHA_256", b64(outside))
    ok(base64.b64decode(d["Plaintext"]) == b"encrypted by Python",
       f"{n}: AsymmetricDecrypt of a ciphertext made by Python cryptography with the PEM (OAEP SHA-256)")
    expect_error(lambda: sdk.asymmetric_decrypt(rsa_id, rsa_v, "RSAES_OAEP_SHA_1", b64(outside)),
                 "InvalidParameter", 400, f"{n}: the same ciphertext under OAEP SHA-1 does not decrypt")
    expect_error(lambda: sdk.asymmetric_encrypt(rsa_id, rsa_v, "SM2PKE", b64(b"x")),
                 "Rejected.UnsupportedOperation", 400, f"{n}: AsymmetricEncrypt SM2PKE with an RSA key")
    expect_error(lambda: sdk.asymmetric_sign(rsa_id, rsa_v, "RSA_PSS_SHA_256", b64(digest)),
                 "Rejected.UnsupportedOperation", 400, f"{n}: AsymmetricSign with an ENCRYPT/DECRYPT key")
    expect_error(lambda: sdk.asymmetric_encrypt(rsa_id, rsa_v, "RSAES_OAEP_SHA_256", b64(b"x" * 191)),
                 "InvalidParameter", 400, f"{n}: 191 bytes is over the OAEP SHA-256 limit of RSA_2048")


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
    ids = []
    for sdk in (Legacy(ak=ak, sk=sk, endpoint=ep), Tea(ak=ak, sk=sk, endpoint=ep), Tea(v2=True, ak=ak, sk=sk, endpoint=ep)):
        ok("Keys" in sdk.list_keys(), f"{sdk.name}: the restricted key may ListKeys")
        e = expect_error(lambda: sdk.create_key("nope"), "Forbidden.NoPermission", 403,
                         f"{sdk.name}: a denied action gets Forbidden.NoPermission")
        ok(bool(e.request_id), f"{sdk.name}: the denial carries a RequestId", f"got {e.request_id!r}")
        ids.append(e.request_id)
    out = os.environ.get("KMSKIT_DENIED_IDS")
    if out:
        with open(out, "w") as f:
            f.write("".join(f"{i}\n" for i in ids))


def main():
    scenario(Legacy(), "legacy")
    scenario(Tea(), "tea3")
    scenario(Tea(v2=True), "tea2")
    asymmetric(Legacy())
    asymmetric(Tea())
    asymmetric(Tea(v2=True))
    for spec in ((Legacy, {}, "legacy V2"), (Tea, {}, "Tea V3"), (Tea, {"v2": True}, "Tea V2")):
        wrong_secret(spec)
    denied()
    print(f"interop: {CHECKS} passed, 0 failed")


if __name__ == "__main__":
    main()
