#!/usr/bin/env python3
"""A fake authentik server for orch's integration tests (stdlib only, Python >= 3.9).

It answers the part of authentik's HTTP API that orch's authentik modules use, with the status
codes, field names, enums, pagination and DRF-style error bodies of authentik's OpenAPI schema
(see README.md beside this file for the list and the sources). State lives in one JSON file that
tests may read and edit while the server runs: it is re-read on every request.

Never logs request headers or bodies: the request log holds method, path, status and whether a
bearer token was presented, nothing else.
"""

import argparse
import base64
import datetime
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import ssl
import string
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

SUPPORTED_MIN = (2024, 12, 0)
SUPPORTED_MAX = (2026, 5, 999)
DEFAULT_VERSION = "2026.5.6"
BOOTSTRAP_TOKEN_IDENTIFIER = "authentik-bootstrap-token"
SELF_SIGNED_NAME = "authentik Self-signed Certificate"
PAGE_SIZE = 100

# --- DRF / Django messages (rest_framework/fields.py, relations.py, serializers.py) ---------------
MSG_REQUIRED = "This field is required."
MSG_NULL = "This field may not be null."
MSG_BLANK = "This field may not be blank."
MSG_NOT_STRING = "Not a valid string."
MSG_NOT_BOOL = "Must be a valid boolean."
MSG_NOT_INT = "A valid integer is required."
MSG_INVALID_CHOICE = '"{0}" is not a valid choice.'
MSG_NOT_A_LIST = 'Expected a list of items but got type "{0}".'
MSG_PK_MISSING = 'Invalid pk "{0}" - object does not exist.'
MSG_PK_TYPE = "Incorrect type. Expected pk value, received {0}."
MSG_NOT_A_DICT = "Invalid data. Expected a dictionary, but got {0}."
MSG_MAX_LENGTH = "Ensure this field has no more than {0} characters."
MSG_SLUG = "Enter a valid “slug” consisting of letters, numbers, underscores or hyphens."
MSG_UNIQUE = "This field must be unique."
MSG_NO_CREDENTIALS = "Authentication credentials were not provided."
MSG_TOKEN_INVALID = "Token invalid/expired"
MSG_UNSUPPORTED_AUTH = "Unsupported authentication type"

SCOPE_MAPPINGS = [
    ("goauthentik.io/providers/oauth2/scope-openid", "authentik default OAuth Mapping: OpenID 'openid'", "openid", ""),
    ("goauthentik.io/providers/oauth2/scope-email", "authentik default OAuth Mapping: OpenID 'email'", "email",
     "Email address"),
    ("goauthentik.io/providers/oauth2/scope-profile", "authentik default OAuth Mapping: OpenID 'profile'", "profile",
     "General Profile Information"),
    ("goauthentik.io/providers/oauth2/scope-entitlements",
     "authentik default OAuth Mapping: Application Entitlements", "entitlements", "Application entitlements"),
    ("goauthentik.io/providers/oauth2/scope-offline_access", "authentik default OAuth Mapping: OpenID 'offline_access'",
     "offline_access", "Access to request new tokens without interaction"),
    ("goauthentik.io/providers/oauth2/scope-authentik_api", "authentik default OAuth Mapping: authentik API access",
     "goauthentik.io/api", "authentik API Access on behalf of your user"),
]

# (slug, name, title, designation, authentication) as in blueprints/default/*.yaml
FLOWS = [
    ("default-authentication-flow", "Welcome to authentik!", "Welcome to authentik!", "authentication", "none"),
    ("default-invalidation-flow", "Default - Invalidation flow", "Default - Invalidation flow", "invalidation", "none"),
    ("default-provider-authorization-explicit-consent", "Authorize Application", "Redirecting to %(app)s",
     "authorization", "require_authenticated"),
    ("default-provider-authorization-implicit-consent", "Authorize Application", "Redirecting to %(app)s",
     "authorization", "require_authenticated"),
    ("default-provider-invalidation-flow", "Logged out of application", "You've logged out of %(app)s.",
     "invalidation", "none"),
    ("default-source-authentication", "Welcome to authentik!", "Welcome to authentik!", "authentication",
     "require_unauthenticated"),
    ("default-source-enrollment", "Welcome to authentik! Please select a username.", "Welcome to authentik!",
     "enrollment", "require_unauthenticated"),
    ("default-user-settings-flow", "User settings", "Update your info", "stage_configuration",
     "require_authenticated"),
]

GRANT_TYPES = ["authorization_code", "implicit", "hybrid", "refresh_token", "client_credentials", "password",
               "urn:ietf:params:oauth:grant-type:device_code"]
SUB_MODES = ["hashed_user_id", "user_id", "user_uuid", "user_username", "user_email", "user_upn"]

# DER encodings (tag, length, value) of the OIDs that name a public key algorithm or curve.
OID_RSA = bytes.fromhex("06092a864886f70d010101")
OID_EC = bytes.fromhex("06072a8648ce3d0201")
OID_DSA = bytes.fromhex("06072a8648ce380401")
OID_ED25519 = bytes.fromhex("06032b6570")
OID_ED448 = bytes.fromhex("06032b6571")
CURVES = {bytes.fromhex("06082a8648ce3d030107"): "ES256", bytes.fromhex("06052b81040022"): "ES384",
          bytes.fromhex("06052b81040023"): "ES512"}


class Features:
    """What differs between authentik releases, per reference §4, §6, §7 and the 2026.5.6 schema."""

    def __init__(self, version, ec_type_name):
        self.version = version
        v = parse_version(version)
        self.key_type_field = "key_type" if v >= (2025, 12) else "private_key_type"
        self.ec_type_name = ec_type_name  # value of the legacy private_key_type for EC keys
        self.include_details = v < (2026, 2)
        self.key_type_filter = v >= (2025, 12)
        self.algs = ["rsa", "ecdsa"] + (["ed25519", "ed448"] if v >= (2026, 2) else [])
        self.redirect_uri_type = v >= (2026, 5)
        self.grant_types = v >= (2026, 5)
        self.logout_uri = v >= (2025, 10)
        self.backchannel_logout_uri = (2025, 8) <= v < (2025, 10)
        self.refresh_token_threshold = v >= (2025, 10)
        self.meta_hide = v >= (2026, 5)
        self.meta_icon_writable = v >= (2026, 2)
        self.autocomplete = v >= (2026, 2)


def parse_version(text):
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate_id(length=40):
    """authentik.lib.generators.generate_id: letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


# --- PEM / certificate helpers ------------------------------------------------------------------

def pem_blocks(text):
    """[(label, der)] of every well-formed PEM block in text."""
    blocks = []
    for match in re.finditer(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", text or "", re.S):
        body = re.sub(r"\s+", "", match.group(2))
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:
            continue
        if der[:1] == b"\x30":
            blocks.append((match.group(1), der))
    return blocks


def der_key_type(der, label=""):
    """Key algorithm named by the OIDs of a certificate's SPKI or a private key: (type, jwt alg)."""
    if label == "RSA PRIVATE KEY" or OID_RSA in der:
        return "rsa", "RS256"
    if label == "EC PRIVATE KEY" or OID_EC in der:
        for oid, alg in CURVES.items():
            if oid in der:
                return "ec", alg
        return "ec", None
    if OID_DSA in der:
        return "dsa", None
    if OID_ED25519 in der:
        return "ed25519", None
    if OID_ED448 in der:
        return "ed448", None
    return None, None


class OpenSSL:
    """Real keys and certificate details when the openssl CLI exists (it does in the test image)."""

    def __init__(self, rsa_bits):
        self.path = shutil.which("openssl")
        self.rsa_bits = rsa_bits

    def run(self, args, stdin=None):
        result = subprocess.run([self.path] + args, input=stdin, capture_output=True, timeout=120)
        return result.returncode, result.stdout.decode("utf-8", "replace")

    def generate(self, common_name, sans, days, alg):
        """(certificate PEM, key PEM), self-signed like authentik's CertificateBuilder."""
        newkey = {
            "rsa": ["-newkey", "rsa:%d" % self.rsa_bits],
            "ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
            "ed25519": ["-newkey", "ed25519"],
            "ed448": ["-newkey", "ed448"],
        }[alg]
        with tempfile.TemporaryDirectory() as tmp:
            key, cert = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
            subject = "/CN=%s/O=authentik/OU=Self-signed" % common_name[:64].replace("/", "\\/")
            args = ["req", "-x509", "-nodes", "-keyout", key, "-out", cert, "-days", str(max(days, 1)),
                    "-subj", subject] + newkey
            if alg in ("rsa", "ecdsa"):
                args += ["-sha256"]
            if sans:
                args += ["-addext", "subjectAltName=critical," + ",".join("DNS:" + s.strip() for s in sans)]
            code, _ = self.run(args)
            if code != 0:
                raise RuntimeError("openssl req failed")
            with open(cert) as c, open(key) as k:
                return c.read(), k.read()

    def certificate_details(self, pem):
        """(subject RFC4514, expiry ISO) or None when openssl cannot parse the certificate."""
        code, out = self.run(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-enddate"], pem.encode())
        if code != 0:
            return None
        subject = re.search(r"^subject=(.*)$", out, re.M)
        end = re.search(r"^notAfter=(.*)$", out, re.M)
        expiry = None
        if end:
            parsed = datetime.datetime.strptime(re.sub(r"\s+", " ", end.group(1).strip()), "%b %d %H:%M:%S %Y %Z")
            expiry = parsed.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (subject.group(1).strip() if subject else ""), expiry

    def key_loads(self, pem):
        code, _ = self.run(["pkey", "-noout", "-passin", "pass:"], pem.encode())
        return code == 0


# --- the server ---------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(status)
        self.status = status
        self.body = body


def not_found(model=None):
    """DRF >= 3.15 passes get_object_or_404's message on; a malformed key gives the bare message."""
    return ApiError(404, {"detail": "No %s matches the given query." % model if model else "Not found."})


def is_uuid(text):
    try:
        uuid.UUID(text)
        return True
    except ValueError:
        return False


class FakeAuthentik:
    def __init__(self, options):
        self.options = options
        self.features = Features(options.version, options.legacy_ec_type)
        self.openssl = OpenSSL(options.rsa_bits) if shutil.which("openssl") else None
        self.lock = threading.RLock()
        self.bootstrapped = False
        self.env = read_env(options.env_file)
        self.tls_dir = tempfile.mkdtemp(prefix="fake-authentik-tls-")
        self.tls_contexts = {}
        with self.lock:
            state = self.load_state()
            self.ensure_defaults(state)
            self.save_state(state)
        # Delays count from the end of the (possibly slow) key generation above.
        self.started = time.monotonic()
        self.ready_at = self.started + options.ready_delay
        self.bootstrap_at = self.ready_at + options.bootstrap_delay

    # -- state --
    def load_state(self):
        try:
            with open(self.options.state) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return self.fresh_state()

    def save_state(self, state):
        directory = os.path.dirname(os.path.abspath(self.options.state))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.options.state)

    def fresh_state(self):
        flows = []
        for slug, name, title, designation, authentication in FLOWS:
            flows.append({"pk": str(uuid.uuid4()), "slug": slug, "name": name, "title": title,
                          "designation": designation, "authentication": authentication,
                          "policy_engine_mode": "any", "compatibility_mode": False, "layout": "stacked",
                          "denied_action": "message_continue"})
        mappings = [{"pk": str(uuid.uuid4()), "managed": managed, "name": name, "scope_name": scope,
                     "description": description, "expression": "return {}"}
                    for managed, name, scope, description in SCOPE_MAPPINGS]
        by_slug = {f["slug"]: f["pk"] for f in flows}
        brand = {"brand_uuid": str(uuid.uuid4()), "domain": "authentik-default", "default": True,
                 "branding_title": "authentik", "branding_logo": "/static/dist/assets/icons/icon_left_brand.svg",
                 "branding_favicon": "/static/dist/assets/icons/icon.png", "branding_custom_css": "",
                 "branding_default_flow_background": "/static/dist/assets/images/flow_background.jpg",
                 "flow_authentication": by_slug["default-authentication-flow"],
                 "flow_invalidation": by_slug["default-invalidation-flow"], "flow_recovery": None,
                 "flow_unenrollment": None, "flow_user_settings": by_slug["default-user-settings-flow"],
                 "flow_device_code": None, "flow_lockdown": None, "default_application": None,
                 "web_certificate": None, "client_certificates": [], "attributes": {}}
        return {"setup": False, "tokens": [], "users": [], "flows": flows, "scope_mappings": mappings,
                "certificatekeypairs": [], "providers": [], "next_provider_pk": 1, "applications": [],
                "brands": [brand]}

    def ensure_defaults(self, state):
        """authentik/crypto/apps.py: the self-signed pair is created at startup when missing."""
        if not any(kp["name"] == SELF_SIGNED_NAME for kp in state["certificatekeypairs"]):
            sans = ["%s.self-signed.goauthentik.io" % generate_id(16).lower()]
            state["certificatekeypairs"].append(self.build_keypair(SELF_SIGNED_NAME, sans, 365, "rsa"))

    def maybe_bootstrap(self, state):
        """authentik/core/setup/signals.py: once, after ready; only on a database not yet set up."""
        if self.bootstrapped or time.monotonic() < self.bootstrap_at:
            return False
        self.bootstrapped = True
        self.env = read_env(self.options.env_file)  # post_startup: the container's environment
        token = self.env.get("AUTHENTIK_BOOTSTRAP_TOKEN", "")
        password = self.env.get("AUTHENTIK_BOOTSTRAP_PASSWORD", "")
        password_hash = self.env.get("AUTHENTIK_BOOTSTRAP_PASSWORD_HASH", "")
        if not (token or password or password_hash) or state.get("setup"):
            return False
        state["users"] = [{"pk": 1, "username": "akadmin", "name": "authentik Default Admin",
                           "email": self.env.get("AUTHENTIK_BOOTSTRAP_EMAIL", "root@example.com"),
                           "is_superuser": True, "has_password": bool(password or password_hash)}]
        if token:
            state["tokens"] = [t for t in state["tokens"] if t["identifier"] != BOOTSTRAP_TOKEN_IDENTIFIER]
            # Only a digest is stored: the state file is read by tests that grep for secret values.
            state["tokens"].append({"identifier": BOOTSTRAP_TOKEN_IDENTIFIER, "intent": "api", "expiring": False,
                                    "user": "akadmin", "key_sha256": sha256_hex(token)})
        state["setup"] = True
        return True

    # -- key pairs --
    def build_keypair(self, name, sans, days, alg):
        if self.openssl:
            cert, key = self.openssl.generate(name, sans, days, alg)
        else:
            cert, key = placeholder_pem(name, alg)
        return self.keypair_record(name, cert, key)

    def keypair_record(self, name, cert, key, pk=None, managed=None):
        record = {"pk": pk or str(uuid.uuid4()), "name": name, "certificate_data": cert, "key_data": key or "",
                  "managed": managed}
        record.update(self.keypair_details(cert, key or ""))
        return record

    def keypair_details(self, cert, key):
        blocks = pem_blocks(cert)
        der = blocks[0][1] if blocks else b""
        cert_type, cert_alg = der_key_type(der)
        key_blocks = pem_blocks(key)
        key_type, key_alg = der_key_type(key_blocks[0][1], key_blocks[0][0]) if key_blocks else (None, None)
        subject, expiry = None, None
        if self.openssl and der:
            parsed = self.openssl.certificate_details(cert)
            if parsed:
                subject, expiry = parsed
        if der and subject is None:
            placeholder = re.search(r"^# fake-subject: (.*)$", cert, re.M)
            subject = placeholder.group(1) if placeholder else None
        return {"fingerprint_sha256": colon_hex(hashlib.sha256(der).digest()) if der else None,
                "fingerprint_sha1": colon_hex(hashlib.sha1(der).digest()) if der else None,
                "cert_subject": subject, "cert_expiry": expiry, "cert_key_type": cert_type,
                "private_key_kind": key_type, "jwt_alg": key_alg or cert_alg}

    def keypair_json(self, kp, query=None):
        include = True
        if self.features.include_details and query is not None:
            include = first(query, "include_details", "true").lower() == "true"
        data = {"pk": kp["pk"], "name": kp["name"],
                "fingerprint_sha256": kp["fingerprint_sha256"] if include else None,
                "fingerprint_sha1": kp["fingerprint_sha1"] if include else None,
                "cert_expiry": kp["cert_expiry"] if include else None,
                "cert_subject": kp["cert_subject"] if include else None,
                "private_key_available": bool(kp["key_data"])}
        if self.features.key_type_field == "key_type":
            data["key_type"] = kp["cert_key_type"]
        else:
            kind = kp["private_key_kind"] if kp["key_data"] and include else None
            data["private_key_type"] = self.features.ec_type_name if kind == "ec" else kind
        data["certificate_download_url"] = "/api/v3/crypto/certificatekeypairs/%s/view_certificate/?download" % kp["pk"]
        data["private_key_download_url"] = "/api/v3/crypto/certificatekeypairs/%s/view_private_key/?download" % kp["pk"]
        data["managed"] = kp.get("managed")
        return data

    def validate_certificate(self, value, errors):
        if not pem_blocks(value) or (self.openssl and self.openssl.certificate_details(value) is None):
            errors["certificate_data"] = ["Unable to load certificate."]

    def validate_key(self, value, errors):
        if value == "":
            return
        blocks = pem_blocks(value)
        bad = not blocks or "ENCRYPTED" in blocks[0][0] or "PRIVATE KEY" not in blocks[0][0]
        if not bad and self.openssl:
            bad = not self.openssl.key_loads("\n".join(line.strip() for line in value.split("\n")))
        if bad:
            errors["key_data"] = ["Unable to load private key (possibly encrypted?)."]

    # -- TLS (the 9443 listener): the brand's web certificate, chosen by SNI like authentik's router --
    def tls_context_for(self, server_name):
        with self.lock:
            # authentik's server (internal/web/brand_tls) reloads brands and their certificates on a
            # timer, not when they change: --tls-reload-interval imitates that delay.
            now = time.monotonic()
            interval = self.options.tls_reload_interval
            snapshot = getattr(self, "_tls_snapshot", None)
            if snapshot is None or now - snapshot[0] >= interval:
                snapshot = (now, self.load_state())
                self._tls_snapshot = snapshot
            state = snapshot[1]
            brand = match_brand(state["brands"], server_name or "")
            kp = None
            if brand and brand.get("web_certificate"):
                kp = find(state["certificatekeypairs"], "pk", brand["web_certificate"])
            if not kp or not kp["key_data"]:
                kp = self.default_tls_keypair()
            cache_key = (kp["pk"], kp["fingerprint_sha256"])
            if cache_key not in self.tls_contexts:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                context.load_cert_chain(*self.tls_files(kp))
                self.tls_contexts[cache_key] = context
            return self.tls_contexts[cache_key]

    def tls_files(self, kp):
        """(certificate path, key path) of a pair, written once per fingerprint for ssl's loader."""
        stem = os.path.join(self.tls_dir, "%s-%s" % (kp["pk"], (kp["fingerprint_sha256"] or "").replace(":", "")))
        if not os.path.exists(stem + ".key"):
            with open(stem + ".crt", "w") as cert:
                cert.write(kp["certificate_data"])
            fd = os.open(stem + ".key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as key:
                key.write(kp["key_data"])
        return stem + ".crt", stem + ".key"

    def default_tls_keypair(self):
        """authentik's router serves a generated self-signed certificate when no brand has one."""
        if not hasattr(self, "_default_tls"):
            self._default_tls = self.build_keypair("authentik default certificate", [], 365, "rsa")
        return self._default_tls


def placeholder_pem(name, alg):
    """Without openssl: PEM-shaped text whose DER carries the right algorithm OID (not a usable key)."""
    oid = {"rsa": OID_RSA, "ecdsa": OID_EC + list(CURVES)[0], "ed25519": OID_ED25519, "ed448": OID_ED448}[alg]
    der = b"\x30\x82\x00\x00" + oid + secrets.token_bytes(32)
    body = base64.b64encode(der).decode()
    cert = "# fake-subject: OU=Self-signed,O=authentik,CN=%s\n-----BEGIN CERTIFICATE-----\n%s\n" \
           "-----END CERTIFICATE-----\n" % (name, body)
    key = "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n" % body
    return cert, key


def match_brand(brands, host):
    """authentik/brands/utils.py: the longest domain the host ends with, else the default brand."""
    host = host.split(":")[0].lower()
    matches = [b for b in brands if b["domain"] and host.endswith(b["domain"].lower())]
    if matches:
        return max(matches, key=lambda b: len(b["domain"]))
    defaults = [b for b in brands if b.get("default")]
    return defaults[0] if defaults else None


def colon_hex(digest):
    return ":".join("%02x" % b for b in digest)


def sha256_hex(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find(items, key, value):
    for item in items:
        if item.get(key) == value:
            return item
    return None


def first(query, name, default=None):
    values = query.get(name)
    return values[0] if values else default


def read_env(path):
    """Compose-style .env values (KEY=VALUE, # comments, optional quotes), over the process env."""
    env = {k: v for k, v in os.environ.items() if k.startswith("AUTHENTIK_")}
    if not path:
        return env
    try:
        with open(path) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return env
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


# --- field validation (DRF semantics) -------------------------------------------------------------

class Validator:
    """Collects DRF-shaped errors ({field: [messages]}) while reading a request body."""

    def __init__(self, data, partial):
        self.data = data
        self.partial = partial
        self.errors = {}
        self.clean = {}

    def present(self, name, required):
        if name in self.data:
            return True
        if required and not self.partial:
            self.errors[name] = [MSG_REQUIRED]
        return False

    def fail(self, name, message):
        self.errors[name] = [message]

    def string(self, name, required=False, allow_blank=False, nullable=False, max_length=None, pattern=None,
               pattern_message=None):
        if not self.present(name, required):
            return
        value = self.data[name]
        if value is None:
            return self._null(name, nullable)
        if isinstance(value, (bool, dict, list)):
            return self.fail(name, MSG_NOT_STRING)
        value = str(value).strip()  # CharField(trim_whitespace=True)
        if value == "" and not allow_blank:
            return self.fail(name, MSG_BLANK)
        if max_length and len(value) > max_length:
            return self.fail(name, MSG_MAX_LENGTH.format(max_length))
        if pattern and value and not re.match(pattern, value):
            return self.fail(name, pattern_message)
        self.clean[name] = value

    def boolean(self, name):
        if not self.present(name, False):
            return
        value = self.data[name]
        truthy = (True, 1, "1", "true", "True", "TRUE", "yes", "on", "y", "t")
        falsy = (False, 0, "0", "false", "False", "FALSE", "no", "off", "n", "f")
        if value in truthy and not isinstance(value, float):
            self.clean[name] = True
        elif value in falsy and not isinstance(value, float):
            self.clean[name] = False
        else:
            self.fail(name, MSG_NOT_BOOL)

    def choice(self, name, choices, required=False):
        if not self.present(name, required):
            return
        value = self.data[name]
        if value is None:
            return self.fail(name, MSG_NULL)
        if str(value) not in choices or isinstance(value, (bool, dict, list)):
            return self.fail(name, MSG_INVALID_CHOICE.format(value if not isinstance(value, bool) else value))
        self.clean[name] = str(value)

    def choice_list(self, name, choices):
        if not self.present(name, False):
            return
        value = self.data[name]
        if not isinstance(value, list):
            return self.fail(name, MSG_NOT_A_LIST.format(py_type(value)))
        bad = [v for v in value if str(v) not in choices]
        if bad:
            return self.fail(name, MSG_INVALID_CHOICE.format(bad[0]))
        self.clean[name] = [str(v) for v in value]

    def pk(self, name, items, key="pk", required=False, nullable=True, integer=False):
        if not self.present(name, required):
            return
        value = self.data[name]
        if value is None:
            return self._null(name, nullable)
        message = self._pk_error(value, items, key, integer)
        if message:
            return self.fail(name, message)
        self.clean[name] = int(value) if integer else str(value)

    def pk_list(self, name, items, key="pk", integer=False):
        if not self.present(name, False):
            return
        value = self.data[name]
        if not isinstance(value, list):
            return self.fail(name, MSG_NOT_A_LIST.format(py_type(value)))
        for entry in value:
            message = self._pk_error(entry, items, key, integer)
            if message:
                return self.fail(name, message)
        self.clean[name] = [int(v) if integer else str(v) for v in value]

    def _pk_error(self, value, items, key, integer):
        if isinstance(value, (bool, dict, list)) or value is None:
            return MSG_PK_TYPE.format(py_type(value))
        if integer:
            try:
                value = int(str(value))
            except ValueError:
                return MSG_PK_TYPE.format(py_type(value))
        if not any(str(item[key]) == str(value) for item in items):
            return MSG_PK_MISSING.format(value)
        return None

    def _null(self, name, nullable):
        if nullable:
            self.clean[name] = None
        else:
            self.fail(name, MSG_NULL)


def py_type(value):
    return {dict: "dict", list: "list", str: "str", int: "int", float: "float", bool: "bool",
            type(None): "NoneType"}.get(type(value), type(value).__name__)


# --- HTTP ------------------------------------------------------------------------------------------

def make_handler(fake):
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = "fake-authentik"
        sys_version = ""
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):  # the request log is written by `handle_any` instead
            pass

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

        def do_PUT(self):
            self.handle_any("PUT")

        def do_PATCH(self):
            self.handle_any("PATCH")

        def do_DELETE(self):
            self.handle_any("DELETE")

        def do_HEAD(self):
            self.handle_any("HEAD")

        def do_OPTIONS(self):
            self.handle_any("OPTIONS")

        def handle_any(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            auth_seen = "bearer" if (self.headers.get("Authorization") or "").lower().startswith("bearer") else "none"
            try:
                status, payload, content_type, extra = fake_dispatch(fake, self, method, body)
            except ApiError as error:
                status, payload, content_type, extra = error.status, error.body, "application/json", {}
            except Exception as error:  # a bug in the fake: 500 like Django, and say so in the log
                status, payload, content_type, extra = 500, "Server Error (%s)" % type(error).__name__, \
                    "text/html", {}
            # Logged before answering, so a client that got its response finds the line already there.
            log_request(fake.options.log, method, self.path, status, auth_seen)
            self.respond(status, payload, content_type, extra, method)

        def respond(self, status, payload, content_type, extra, method):
            if payload is None:
                data = b""
            elif isinstance(payload, (dict, list)):
                # DRF's JSONRenderer: compact, UTF-8 (UNICODE_JSON), not ASCII-escaped.
                data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            else:
                data = str(payload).encode()
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
            for key, value in extra.items():
                self.send_header(key, value)
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(data)

    return Handler


_log_lock = threading.Lock()


def log_request(path, method, raw_path, status, auth_seen):
    if not path:
        return
    line = json.dumps({"time": now_iso(), "method": method, "path": raw_path, "status": status, "auth": auth_seen})
    with _log_lock, open(path, "a") as handle:
        handle.write(line + "\n")


# Routes: (regex, {method: handler name}, needs authentication)
ROUTES = [
    (r"/api/v3/root/config/", {"GET": "root_config"}, False),
    (r"/api/v3/admin/version/", {"GET": "admin_version"}, True),
    (r"/api/v3/core/users/me/", {"GET": "users_me"}, True),
    (r"/api/v3/crypto/certificatekeypairs/", {"GET": "kp_list", "POST": "kp_create"}, True),
    (r"/api/v3/crypto/certificatekeypairs/generate/", {"POST": "kp_generate"}, True),
    (r"/api/v3/crypto/certificatekeypairs/(?P<pk>[^/]+)/",
     {"GET": "kp_retrieve", "PUT": "kp_update", "PATCH": "kp_update", "DELETE": "kp_delete"}, True),
    (r"/api/v3/crypto/certificatekeypairs/(?P<pk>[^/]+)/view_certificate/", {"GET": "kp_view_certificate"}, True),
    (r"/api/v3/crypto/certificatekeypairs/(?P<pk>[^/]+)/view_private_key/", {"GET": "kp_view_private_key"}, True),
    (r"/api/v3/flows/instances/", {"GET": "flow_list"}, True),
    (r"/api/v3/flows/instances/(?P<slug>[^/]+)/", {"GET": "flow_retrieve"}, True),
    (r"/api/v3/propertymappings/provider/scope/", {"GET": "scope_list"}, True),
    (r"/api/v3/propertymappings/provider/scope/(?P<pk>[^/]+)/", {"GET": "scope_retrieve"}, True),
    (r"/api/v3/providers/oauth2/", {"GET": "provider_list", "POST": "provider_create"}, True),
    (r"/api/v3/providers/oauth2/(?P<pk>[^/]+)/",
     {"GET": "provider_retrieve", "PUT": "provider_update", "PATCH": "provider_update",
      "DELETE": "provider_delete"}, True),
    (r"/api/v3/providers/oauth2/(?P<pk>[^/]+)/setup_urls/", {"GET": "provider_setup_urls"}, True),
    (r"/api/v3/core/applications/", {"GET": "app_list", "POST": "app_create"}, True),
    (r"/api/v3/core/applications/(?P<slug>[^/]+)/",
     {"GET": "app_retrieve", "PUT": "app_update", "PATCH": "app_update", "DELETE": "app_delete"}, True),
    (r"/api/v3/core/brands/", {"GET": "brand_list", "POST": "brand_create"}, True),
    (r"/api/v3/core/brands/(?P<pk>[^/]+)/",
     {"GET": "brand_retrieve", "PUT": "brand_update", "PATCH": "brand_update", "DELETE": "brand_delete"}, True),
]
COMPILED = [(re.compile("^" + pattern + "$"), methods, auth) for pattern, methods, auth in ROUTES]


def fake_dispatch(fake, request, method, body):
    parsed = urllib.parse.urlsplit(request.path)
    path = parsed.path
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    now = time.monotonic()
    if path == "/-/health/live/":
        return 200, None, "text/html", {}
    if now < fake.ready_at:
        if path == "/-/health/ready/":
            return 503, None, "text/html", {}
        if "application/json" in (request.headers.get("Accept") or ""):
            return 502, {"error": "authentik starting..."}, "application/json", {}
        return 502, "authentik starting...", "text/plain", {}
    if path == "/-/health/ready/":
        return 200, None, "text/html", {}

    well_known = re.match(r"^/application/o/(?P<slug>[^/]+)/\.well-known/openid-configuration/?$", path)
    with fake.lock:
        state = fake.load_state()
        if fake.maybe_bootstrap(state):
            fake.save_state(state)
        if well_known:
            return discovery(fake, state, request, well_known.group("slug"))
        for regex, methods, needs_auth in COMPILED:
            match = regex.match(path)
            if not match:
                continue
            user = authenticate(state, request.headers.get("Authorization"))
            if needs_auth and user is None:
                raise ApiError(403, {"detail": MSG_NO_CREDENTIALS})
            if method not in methods:
                if method == "OPTIONS":
                    return 200, {"name": "fake", "description": ""}, "application/json", {}
                raise ApiError(405, {"detail": 'Method "%s" not allowed.' % method})
            data = parse_body(request.headers.get("Content-Type") or "", body) if method in (
                "POST", "PUT", "PATCH") else None
            api = Api(fake, state, request, query)
            result = getattr(api, methods[method])(data=data, **match.groupdict())
            if api.dirty:
                fake.save_state(state)
            status, payload = result
            return status, payload, "application/json", {}
    raise ApiError(404, {"detail": "Not found."})


def authenticate(state, header):
    """authentik/api/authentication.py: None without credentials, 403 for anything unusable."""
    raw = (header or "").strip()
    if raw == "" or " " not in raw:
        return None
    scheme, _, credentials = raw.partition(" ")
    if scheme.lower() != "bearer":
        raise ApiError(403, {"detail": MSG_UNSUPPORTED_AUTH})
    if credentials == "":
        raise ApiError(403, {"detail": "Malformed header"})
    digest = sha256_hex(credentials)
    for token in state.get("tokens", []):
        if token.get("intent") == "api" and token.get("key_sha256") == digest:
            return token.get("user")
    raise ApiError(403, {"detail": MSG_TOKEN_INVALID})


def parse_body(content_type, body):
    if not body:
        return {}
    if content_type.startswith("application/json"):
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise ApiError(400, {"detail": "JSON parse error - %s" % error})
    if content_type.startswith("application/x-www-form-urlencoded"):
        return {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}
    raise ApiError(415, {"detail": 'Unsupported media type "%s" in request.' % content_type.split(";")[0]})


def require_dict(data):
    if not isinstance(data, dict):
        raise ApiError(400, {"non_field_errors": [MSG_NOT_A_DICT.format(py_type(data))]})


def paginate(api, items):
    query = api.query
    try:
        size = int(first(query, "page_size", PAGE_SIZE))
        if size <= 0:
            size = PAGE_SIZE
    except ValueError:
        size = PAGE_SIZE
    count = len(items)
    pages = max(1, -(-count // size))
    raw_page = first(query, "page", "1")
    try:
        page = pages if raw_page == "last" else int(raw_page)
    except ValueError:
        raise ApiError(404, {"detail": "Invalid page."})
    if page < 1 or page > pages:
        raise ApiError(404, {"detail": "Invalid page."})
    chunk = items[(page - 1) * size: page * size]
    body = {"pagination": {"next": page + 1 if page < pages else 0, "previous": page - 1 if page > 1 else 0,
                           "count": count, "current": page, "total_pages": pages,
                           "start_index": (page - 1) * size + 1 if count else 0,
                           "end_index": count if page == pages else page * size},
            "results": chunk}
    if api.fake.features.autocomplete:
        body["autocomplete"] = {}
    return 200, body


def order(api, items, default):
    field = first(api.query, "ordering", default) or default
    reverse = field.startswith("-")
    field = field.lstrip("-")
    if items and field not in items[0]:  # OrderingFilter ignores unknown fields
        field, reverse = default, False
    return sorted(items, key=lambda item: (item.get(field) is None, str(item.get(field, ""))), reverse=reverse)


def filter_exact(items, query, names):
    for name in names:
        if name in query:
            items = [i for i in items if str(i.get(name)) == query[name][0] or
                     (isinstance(i.get(name), bool) and str(i.get(name)).lower() == query[name][0].lower())]
    return items


def filter_search(items, query, fields):
    term = first(query, "search")
    if not term:
        return items
    term = term.lower()
    return [i for i in items if any(term in str(i.get(f) or "").lower() for f in fields)]


def base_url(fake, request, tls):
    if fake.options.external_url:
        return fake.options.external_url.rstrip("/")
    scheme = "https" if tls else "http"
    forwarded = request.headers.get("X-Forwarded-Proto")
    if forwarded:
        scheme = forwarded.split(",")[0].strip()
    host = request.headers.get("Host") or "localhost"
    return "%s://%s" % (scheme, host)


def discovery(fake, state, request, slug):
    """authentik/providers/oauth2/views/provider.py ProviderInfoView (Django view: HTML 404s)."""
    app = find(state["applications"], "slug", slug)
    provider = find(state["providers"], "pk", app["provider"]) if app and app.get("provider") is not None else None
    if not provider:
        return 404, "<h1>Not Found</h1>", "text/html", {}
    root = base_url(fake, request, getattr(request.server, "is_tls", False))
    issuer = root + "/application/o/%s/" % slug if provider["issuer_mode"] == "per_provider" else root + "/"
    alg = "HS256"
    if provider.get("signing_key"):
        kp = find(state["certificatekeypairs"], "pk", provider["signing_key"])
        alg = kp and kp.get("jwt_alg")
        if not alg:
            return 500, "Server Error (Invalid private key type)", "text/html", {}
    mappings = [find(state["scope_mappings"], "pk", pk) for pk in provider["property_mappings"]]
    scopes = [m["scope_name"] for m in mappings if m]
    doc = {
        "issuer": issuer,
        "authorization_endpoint": root + "/application/o/authorize/",
        "token_endpoint": root + "/application/o/token/",
        "userinfo_endpoint": root + "/application/o/userinfo/",
        "end_session_endpoint": root + "/application/o/%s/end-session/" % slug,
        "introspection_endpoint": root + "/application/o/introspect/",
        "revocation_endpoint": root + "/application/o/revoke/",
        "device_authorization_endpoint": root + "/application/o/device/",
        "response_types_supported": ["code", "id_token", "id_token token", "code token", "code id_token",
                                     "code id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "jwks_uri": root + "/application/o/%s/jwks/" % slug,
        "grant_types_supported": ["authorization_code", "refresh_token", "implicit", "client_credentials",
                                  "password", "urn:ietf:params:oauth:grant-type:device_code"],
        "id_token_signing_alg_values_supported": [alg],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "acr_values_supported": ["goauthentik.io/providers/oauth2/default"],
        "scopes_supported": scopes,
        "request_parameter_supported": False,
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce"],
        "claims_parameter_supported": False,
        "code_challenge_methods_supported": ["plain", "S256"],
    }
    if provider.get("encryption_key"):
        doc["id_token_encryption_alg_values_supported"] = ["RSA-OAEP-256"]
        doc["id_token_encryption_enc_values_supported"] = ["A256CBC-HS512"]
    return 200, doc, "application/json", {}


class Api:
    def __init__(self, fake, state, request, query):
        self.fake = fake
        self.features = fake.features
        self.state = state
        self.request = request
        self.query = query
        self.dirty = False

    # -- misc --
    def root_config(self, data):
        return 200, {"error_reporting": {"enabled": False, "sentry_dsn": "", "environment": "customer",
                                         "send_pii": False, "traces_sample_rate": 0.0},
                     "capabilities": ["can_save_media", "can_impersonate"], "cache_timeout": 300,
                     "cache_timeout_flows": 300, "cache_timeout_policies": 300}

    def admin_version(self, data):
        return 200, {"version_current": self.features.version, "version_latest": self.features.version,
                     "version_latest_valid": True, "build_hash": "", "outdated": False, "outpost_outdated": False}

    def users_me(self, data):
        user = (self.state.get("users") or [{}])[0]
        return 200, {"user": {"pk": user.get("pk", 1), "username": user.get("username", "akadmin"),
                              "name": user.get("name", ""), "is_active": True, "is_superuser": True,
                              "email": user.get("email", ""), "groups": [], "avatar": "", "uid": "",
                              "settings": {}, "type": "internal", "system_permissions": []}}

    # -- certificate key pairs --
    def kp(self, pk):
        if not is_uuid(pk):
            raise not_found()
        kp = find(self.state["certificatekeypairs"], "pk", pk)
        if not kp:
            raise not_found("CertificateKeyPair")
        return kp

    def kp_list(self, data):
        items = list(self.state["certificatekeypairs"])
        items = filter_exact(items, self.query, ["name", "managed"])
        if first(self.query, "has_key", "").lower() == "true":
            items = [kp for kp in items if kp["key_data"]]
        if self.features.key_type_filter and "key_type" in self.query:
            items = [kp for kp in items if kp["cert_key_type"] in self.query["key_type"]]
        items = filter_search(items, self.query, ["name"])
        items = order(self, items, "name")
        status, body = paginate(self, items)
        body["results"] = [self.fake.keypair_json(kp, self.query) for kp in body["results"]]
        return status, body

    def kp_retrieve(self, data, pk):
        return 200, self.fake.keypair_json(self.kp(pk), self.query)

    def kp_validate(self, data, instance):
        require_dict(data)
        v = Validator(data, partial=self.request.command == "PATCH")
        v.string("name", required=True)
        v.string("certificate_data", required=True)
        v.string("key_data", allow_blank=True)
        if "name" in v.clean:
            other = find(self.state["certificatekeypairs"], "name", v.clean["name"])
            if other and other is not instance:
                v.fail("name", "Certificate-Key Pair with this name already exists.")
        if "certificate_data" in v.clean and "certificate_data" not in v.errors:
            self.fake.validate_certificate(v.clean["certificate_data"], v.errors)
        if "key_data" in v.clean:
            self.fake.validate_key(v.clean["key_data"], v.errors)
        if v.errors:
            raise ApiError(400, v.errors)
        return v.clean

    def kp_create(self, data):
        clean = self.kp_validate(data, None)
        kp = self.fake.keypair_record(clean["name"], clean["certificate_data"], clean.get("key_data", ""))
        self.state["certificatekeypairs"].append(kp)
        self.dirty = True
        return 201, self.fake.keypair_json(kp)

    def kp_update(self, data, pk):
        kp = self.kp(pk)
        clean = self.kp_validate(data, kp)
        cert = clean.get("certificate_data", kp["certificate_data"])
        key = clean.get("key_data", kp["key_data"])
        kp.update(self.fake.keypair_record(clean.get("name", kp["name"]), cert, key, pk=kp["pk"],
                                           managed=kp.get("managed")))
        self.dirty = True
        return 200, self.fake.keypair_json(kp)

    def kp_delete(self, data, pk):
        kp = self.kp(pk)
        self.state["certificatekeypairs"].remove(kp)
        for provider in self.state["providers"]:  # on_delete=SET_NULL
            for field in ("signing_key", "encryption_key"):
                if provider.get(field) == pk:
                    provider[field] = None
        for brand in self.state["brands"]:
            if brand.get("web_certificate") == pk:
                brand["web_certificate"] = None
        self.dirty = True
        return 204, None

    def kp_generate(self, data):
        require_dict(data)
        v = Validator(data, partial=False)
        v.string("common_name", required=True)
        v.string("subject_alt_name", allow_blank=True)
        if v.present("validity_days", True):
            value = data["validity_days"]
            try:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                v.clean["validity_days"] = int(str(value).strip())
            except ValueError:
                v.fail("validity_days", MSG_NOT_INT)
        v.choice("alg", self.features.algs)
        name = v.clean.get("common_name")
        if name and find(self.state["certificatekeypairs"], "name", name):
            v.fail("common_name", MSG_UNIQUE)
        if v.errors:
            raise ApiError(400, v.errors)
        raw_san = v.clean.get("subject_alt_name", "")
        sans = raw_san.split(",") if raw_san != "" else []
        kp = self.fake.build_keypair(name, sans, v.clean["validity_days"], v.clean.get("alg", "rsa"))
        self.state["certificatekeypairs"].append(kp)
        self.dirty = True
        return 200, self.fake.keypair_json(kp)

    def kp_view_certificate(self, data, pk):
        return 200, {"data": self.kp(pk)["certificate_data"]}

    def kp_view_private_key(self, data, pk):
        return 200, {"data": self.kp(pk)["key_data"]}

    # -- flows and scope mappings (read only) --
    def flow_json(self, flow):
        data = {"pk": flow["pk"], "policybindingmodel_ptr_id": flow["pk"], "name": flow["name"],
                "slug": flow["slug"], "title": flow["title"], "designation": flow["designation"],
                "background": "", "background_url": "/static/dist/assets/images/flow_background.jpg",
                "stages": [], "policies": [], "cache_count": 0,
                "policy_engine_mode": flow["policy_engine_mode"], "compatibility_mode": flow["compatibility_mode"],
                "export_url": "/api/v3/flows/instances/%s/export/" % flow["slug"], "layout": flow["layout"],
                "denied_action": flow["denied_action"], "authentication": flow["authentication"]}
        if self.features.meta_icon_writable:
            data["background_themed_urls"] = None
        return data

    def flow_list(self, data):
        items = filter_exact(list(self.state["flows"]), self.query, ["slug", "designation", "name"])
        if "flow_uuid" in self.query:
            items = [f for f in items if f["pk"] == self.query["flow_uuid"][0]]
        items = order(self, filter_search(items, self.query, ["name", "slug", "title"]), "slug")
        status, body = paginate(self, items)
        body["results"] = [self.flow_json(f) for f in body["results"]]
        return status, body

    def flow_retrieve(self, data, slug):
        flow = find(self.state["flows"], "slug", slug)
        if not flow:
            raise not_found("Flow")
        return 200, self.flow_json(flow)

    def scope_json(self, mapping):
        return {"pk": mapping["pk"], "managed": mapping["managed"], "name": mapping["name"],
                "expression": mapping["expression"], "component": "ak-property-mapping-provider-scope-form",
                "verbose_name": "Scope Mapping", "verbose_name_plural": "Scope Mappings",
                "meta_model_name": "authentik_providers_oauth2.scopemapping", "scope_name": mapping["scope_name"],
                "description": mapping["description"]}

    def scope_list(self, data):
        items = list(self.state["scope_mappings"])
        if "managed" in self.query:  # repeatable, exploded: any of the given values
            items = [m for m in items if m["managed"] in self.query["managed"]]
        if "managed__isnull" in self.query:
            want_null = first(self.query, "managed__isnull").lower() == "true"
            items = [m for m in items if (m["managed"] is None) == want_null]
        items = filter_exact(items, self.query, ["name", "scope_name"])
        items = order(self, filter_search(items, self.query, ["name", "scope_name"]), "scope_name")
        status, body = paginate(self, items)
        body["results"] = [self.scope_json(m) for m in body["results"]]
        return status, body

    def scope_retrieve(self, data, pk):
        if not is_uuid(pk):
            raise not_found()
        mapping = find(self.state["scope_mappings"], "pk", pk)
        if not mapping:
            raise not_found("ScopeMapping")
        return 200, self.scope_json(mapping)

    # -- OAuth2 providers --
    def provider(self, pk):
        if not pk.isdigit():
            raise not_found()
        provider = find(self.state["providers"], "pk", int(pk))
        if not provider:
            raise not_found("OAuth2Provider")
        return provider

    def provider_json(self, p):
        f = self.features
        app = find(self.state["applications"], "provider", p["pk"])
        data = {"pk": p["pk"], "name": p["name"], "authentication_flow": p["authentication_flow"],
                "authorization_flow": p["authorization_flow"], "invalidation_flow": p["invalidation_flow"],
                "property_mappings": list(p["property_mappings"]), "component": "ak-provider-oauth2-form",
                "assigned_application_slug": app["slug"] if app else None,
                "assigned_application_name": app["name"] if app else None,
                "assigned_backchannel_application_slug": None, "assigned_backchannel_application_name": None,
                "verbose_name": "OAuth2/OpenID Provider", "verbose_name_plural": "OAuth2/OpenID Providers",
                "meta_model_name": "authentik_providers_oauth2.oauth2provider", "client_type": p["client_type"]}
        if f.grant_types:
            data["grant_types"] = list(p["grant_types"])
        data.update({"client_id": p["client_id"], "client_secret": p["client_secret"],
                     "access_code_validity": p["access_code_validity"],
                     "access_token_validity": p["access_token_validity"],
                     "refresh_token_validity": p["refresh_token_validity"]})
        if f.refresh_token_threshold:
            data["refresh_token_threshold"] = p["refresh_token_threshold"]
        data.update({"include_claims_in_id_token": p["include_claims_in_id_token"], "signing_key": p["signing_key"],
                     "encryption_key": p["encryption_key"],
                     "redirect_uris": [self.redirect_json(r) for r in p["redirect_uris"]]})
        if f.logout_uri:
            data["logout_uri"] = p["logout_uri"]
            data["logout_method"] = p["logout_method"]
        if f.backchannel_logout_uri:
            data["backchannel_logout_uri"] = p["logout_uri"]
        data.update({"sub_mode": p["sub_mode"], "issuer_mode": p["issuer_mode"],
                     "jwt_federation_sources": list(p["jwt_federation_sources"]),
                     "jwt_federation_providers": list(p["jwt_federation_providers"])})
        return data

    def redirect_json(self, entry):
        data = {"matching_mode": entry["matching_mode"], "url": entry["url"]}
        if self.features.redirect_uri_type:
            data["redirect_uri_type"] = entry.get("redirect_uri_type", "authorization")
        return data

    def provider_list(self, data):
        items = list(self.state["providers"])
        items = filter_exact(items, self.query, ["name", "client_id", "client_type", "authorization_flow",
                                                 "signing_key", "sub_mode", "issuer_mode"])
        if "application" in self.query:
            app = find(self.state["applications"], "pk", first(self.query, "application"))
            items = [p for p in items if app and app.get("provider") == p["pk"]]
        items = order(self, filter_search(items, self.query, ["name"]), "name")
        status, body = paginate(self, items)
        body["results"] = [self.provider_json(p) for p in body["results"]]
        return status, body

    def provider_retrieve(self, data, pk):
        return 200, self.provider_json(self.provider(pk))

    def provider_validate(self, data, instance, partial):
        require_dict(data)
        f, s = self.features, self.state
        v = Validator(data, partial)
        v.string("name", required=True)
        v.pk("authentication_flow", s["flows"])
        v.pk("authorization_flow", s["flows"], required=True, nullable=False)
        v.pk("invalidation_flow", s["flows"], required=True, nullable=False)
        v.pk_list("property_mappings", s["scope_mappings"])
        v.choice("client_type", ["confidential", "public"])
        if f.grant_types:
            v.choice_list("grant_types", GRANT_TYPES)
        v.string("client_id", max_length=255)
        v.string("client_secret", allow_blank=True, max_length=255)
        for name in ["access_code_validity", "access_token_validity", "refresh_token_validity"] + (
                ["refresh_token_threshold"] if f.refresh_token_threshold else []):
            v.string(name)
        v.boolean("include_claims_in_id_token")
        v.pk("signing_key", s["certificatekeypairs"])
        v.pk("encryption_key", s["certificatekeypairs"])
        self.validate_redirect_uris(v)
        if f.logout_uri:
            v.string("logout_uri", allow_blank=True)
            v.choice("logout_method", ["backchannel", "frontchannel"])
        if f.backchannel_logout_uri and "backchannel_logout_uri" in data:
            v.string("backchannel_logout_uri", allow_blank=True)
            if "backchannel_logout_uri" in v.clean:
                v.clean["logout_uri"] = v.clean.pop("backchannel_logout_uri")
        v.choice("sub_mode", SUB_MODES)
        v.choice("issuer_mode", ["global", "per_provider"])
        v.pk_list("jwt_federation_sources", [])
        v.pk_list("jwt_federation_providers", s["providers"], integer=True)
        for field, message in (("name", "provider with this name already exists."),
                               ("client_id", "OAuth2/OpenID Provider with this Client ID already exists.")):
            if field in v.clean and field not in v.errors:
                other = find(s["providers"], field, v.clean[field])
                if other and other is not instance:
                    v.fail(field, message)
        if v.errors:
            raise ApiError(400, v.errors)
        return v.clean

    def validate_redirect_uris(self, v):
        """RedirectURISerializer(many=True): a list of {matching_mode, url[, redirect_uri_type]}."""
        if not v.present("redirect_uris", True):
            return
        value = v.data["redirect_uris"]
        if value is None:
            return v.fail("redirect_uris", MSG_NULL)
        if not isinstance(value, list):
            v.errors["redirect_uris"] = {"non_field_errors": [MSG_NOT_A_LIST.format(py_type(value))]}
            return
        item_errors, clean = [], []
        for entry in value:
            if not isinstance(entry, dict):
                item_errors.append({"non_field_errors": [MSG_NOT_A_DICT.format(py_type(entry))]})
                continue
            item = Validator(entry, partial=False)
            item.choice("matching_mode", ["strict", "regex"], required=True)
            item.string("url", required=True)
            if self.features.redirect_uri_type:
                item.choice("redirect_uri_type", ["authorization", "logout"])
            item_errors.append(item.errors)
            clean.append(item.clean)
        if any(item_errors):
            v.errors["redirect_uris"] = item_errors
            return
        for entry in clean:
            if entry["matching_mode"] == "regex":
                try:
                    re.compile(entry["url"])
                except re.error:
                    return v.fail("redirect_uris", "Invalid Regex Pattern: %s" % entry["url"])
            if self.features.redirect_uri_type:
                entry.setdefault("redirect_uri_type", "authorization")
        v.clean["redirect_uris"] = clean

    def provider_create(self, data):
        clean = self.provider_validate(data, None, partial=False)
        pk = self.state["next_provider_pk"]
        self.state["next_provider_pk"] = pk + 1
        provider = {"pk": pk, "authentication_flow": None, "property_mappings": [], "client_type": "confidential",
                    "grant_types": list(GRANT_TYPES), "client_id": generate_id(40),
                    "client_secret": generate_id(128), "access_code_validity": "minutes=1",
                    "access_token_validity": "hours=1", "refresh_token_validity": "days=30",
                    "refresh_token_threshold": "seconds=0", "include_claims_in_id_token": True,
                    "signing_key": None, "encryption_key": None, "logout_uri": "", "logout_method": "backchannel",
                    "sub_mode": "hashed_user_id", "issuer_mode": "per_provider", "jwt_federation_sources": [],
                    "jwt_federation_providers": []}
        provider.update(clean)
        self.state["providers"].append(provider)
        self.dirty = True
        return 201, self.provider_json(provider)

    def provider_update(self, data, pk):
        provider = self.provider(pk)
        clean = self.provider_validate(data, provider, partial=self.request.command == "PATCH")
        provider.update(clean)
        self.dirty = True
        return 200, self.provider_json(provider)

    def provider_delete(self, data, pk):
        provider = self.provider(pk)
        self.state["providers"].remove(provider)
        for app in self.state["applications"]:  # Application.provider on_delete=SET_DEFAULT (None)
            if app.get("provider") == provider["pk"]:
                app["provider"] = None
        self.dirty = True
        return 204, None

    def provider_setup_urls(self, data, pk):
        provider = self.provider(pk)
        app = find(self.state["applications"], "provider", provider["pk"])
        if not app:
            raise ApiError(404, {"detail": "Provider has no application assigned"})
        root = base_url(self.fake, self.request, getattr(self.request.server, "is_tls", False))
        return 200, {"issuer": root + "/application/o/%s/" % app["slug"],
                     "authorize": root + "/application/o/authorize/", "token": root + "/application/o/token/",
                     "user_info": root + "/application/o/userinfo/",
                     "provider_info": root + "/application/o/%s/.well-known/openid-configuration" % app["slug"],
                     "logout": root + "/application/o/%s/end-session/" % app["slug"],
                     "jwks": root + "/application/o/%s/jwks/" % app["slug"]}

    # -- applications --
    def app(self, slug):
        app = find(self.state["applications"], "slug", slug)
        if not app:
            raise not_found("Application")
        return app

    def app_json(self, a):
        provider = find(self.state["providers"], "pk", a["provider"]) if a.get("provider") is not None else None
        provider_obj = None
        if provider:
            full = self.provider_json(provider)
            provider_obj = {k: full[k] for k in (
                "pk", "name", "authentication_flow", "authorization_flow", "invalidation_flow", "property_mappings",
                "component", "assigned_application_slug", "assigned_application_name",
                "assigned_backchannel_application_slug", "assigned_backchannel_application_name", "verbose_name",
                "verbose_name_plural", "meta_model_name")}
        launch = a["meta_launch_url"] or None
        if not launch and provider and provider["redirect_uris"]:
            parts = urllib.parse.urlsplit(provider["redirect_uris"][0]["url"])
            launch = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", parts.query, parts.fragment))
        data = {"pk": a["pk"], "name": a["name"], "slug": a["slug"], "provider": a.get("provider"),
                "provider_obj": provider_obj, "backchannel_providers": [], "backchannel_providers_obj": [],
                "launch_url": launch, "open_in_new_tab": a["open_in_new_tab"],
                "meta_launch_url": a["meta_launch_url"]}
        if self.features.meta_icon_writable:
            data.update({"meta_icon": a.get("meta_icon", ""), "meta_icon_url": a.get("meta_icon") or None,
                         "meta_icon_themed_urls": None})
        else:
            data["meta_icon"] = None
        data.update({"meta_description": a["meta_description"], "meta_publisher": a["meta_publisher"],
                     "policy_engine_mode": a["policy_engine_mode"], "group": a["group"]})
        if self.features.meta_hide:
            data["meta_hide"] = a.get("meta_hide", False)
        return data

    def app_validate(self, data, instance, partial):
        require_dict(data)
        v = Validator(data, partial)
        v.string("name", required=True)
        v.string("slug", required=True, pattern=r"^[-a-zA-Z0-9_]+$", pattern_message=MSG_SLUG)
        v.pk("provider", self.state["providers"], integer=True)
        v.pk_list("backchannel_providers", [], integer=True)
        v.boolean("open_in_new_tab")
        v.string("meta_launch_url", allow_blank=True)
        if self.features.meta_icon_writable:
            v.string("meta_icon", allow_blank=True)
        v.string("meta_description", allow_blank=True)
        v.string("meta_publisher", allow_blank=True)
        v.choice("policy_engine_mode", ["all", "any"])
        v.string("group", allow_blank=True)
        if self.features.meta_hide:
            v.boolean("meta_hide")
        for field, message in (("slug", "Application with this slug already exists."),
                               ("provider", "Application with this provider already exists.")):
            if v.clean.get(field) is not None and field not in v.errors:
                other = find(self.state["applications"], field, v.clean[field])
                if other and other is not instance:
                    v.fail(field, message)
        if v.errors:
            raise ApiError(400, v.errors)
        return v.clean

    def app_list(self, data):
        items = filter_exact(list(self.state["applications"]), self.query,
                             ["slug", "name", "group", "meta_launch_url", "meta_description", "meta_publisher"])
        items = order(self, filter_search(items, self.query, ["name", "slug", "meta_launch_url",
                                                             "meta_description", "meta_publisher", "group"]), "name")
        status, body = paginate(self, items)
        body["results"] = [self.app_json(a) for a in body["results"]]
        return status, body

    def app_retrieve(self, data, slug):
        return 200, self.app_json(self.app(slug))

    def app_create(self, data):
        clean = self.app_validate(data, None, partial=False)
        app = {"pk": str(uuid.uuid4()), "provider": None, "open_in_new_tab": False, "meta_launch_url": "",
               "meta_icon": "", "meta_description": "", "meta_publisher": "", "policy_engine_mode": "any",
               "group": "", "meta_hide": False}
        app.update(clean)
        self.state["applications"].append(app)
        self.dirty = True
        return 201, self.app_json(app)

    def app_update(self, data, slug):
        app = self.app(slug)
        app.update(self.app_validate(data, app, partial=self.request.command == "PATCH"))
        self.dirty = True
        return 200, self.app_json(app)

    def app_delete(self, data, slug):
        self.state["applications"].remove(self.app(slug))
        self.dirty = True
        return 204, None

    # -- brands --
    BRAND_FLOWS = ["flow_authentication", "flow_invalidation", "flow_recovery", "flow_unenrollment",
                   "flow_user_settings", "flow_device_code", "flow_lockdown"]
    BRAND_STRINGS = ["branding_title", "branding_logo", "branding_favicon", "branding_custom_css",
                     "branding_default_flow_background"]

    BRAND_FIELDS = ["brand_uuid", "domain", "default"] + BRAND_STRINGS + BRAND_FLOWS + [
        "default_application", "web_certificate", "client_certificates", "attributes"]

    def brand_json(self, brand):
        return {field: brand.get(field) for field in self.BRAND_FIELDS}

    def brand(self, pk):
        if not is_uuid(pk):
            raise not_found()
        brand = find(self.state["brands"], "brand_uuid", pk)
        if not brand:
            raise not_found("Brand")
        return brand

    def brand_validate(self, data, instance, partial):
        require_dict(data)
        v = Validator(data, partial)
        v.string("domain", required=True)
        v.boolean("default")
        for name in self.BRAND_STRINGS:
            v.string(name, allow_blank=True)
        for name in self.BRAND_FLOWS:
            v.pk(name, self.state["flows"])
        v.pk("default_application", self.state["applications"])
        v.pk("web_certificate", self.state["certificatekeypairs"])
        v.pk_list("client_certificates", self.state["certificatekeypairs"])
        if "attributes" in data:
            if isinstance(data["attributes"], dict):
                v.clean["attributes"] = data["attributes"]
            else:
                v.fail("attributes", 'Expected a dictionary of items but got type "%s".' % py_type(data["attributes"]))
        if "domain" in v.clean:
            other = find(self.state["brands"], "domain", v.clean["domain"])
            if other and other is not instance:
                v.fail("domain", "Brand with this domain already exists.")
        if v.clean.get("default"):
            other = [b for b in self.state["brands"] if b.get("default") and b is not instance]
            if other:
                v.errors.setdefault("non_field_errors", []).append("Only a single brand can be set as default.")
        if v.errors:
            raise ApiError(400, v.errors)
        return v.clean

    def brand_list(self, data):
        items = filter_exact(list(self.state["brands"]), self.query,
                             ["domain", "default", "web_certificate", "brand_uuid", "branding_title"])
        items = order(self, filter_search(items, self.query, ["domain", "branding_title"]), "domain")
        status, body = paginate(self, items)
        body["results"] = [self.brand_json(b) for b in body["results"]]
        return status, body

    def brand_retrieve(self, data, pk):
        return 200, self.brand_json(self.brand(pk))

    def brand_create(self, data):
        clean = self.brand_validate(data, None, partial=False)
        brand = dict(self.state["brands"][0]) if self.state["brands"] else {}
        brand.update({"brand_uuid": str(uuid.uuid4()), "default": False, "web_certificate": None,
                      "client_certificates": [], "attributes": {}})
        brand.update(clean)
        self.state["brands"].append(brand)
        self.dirty = True
        return 201, self.brand_json(brand)

    def brand_update(self, data, pk):
        brand = self.brand(pk)
        brand.update(self.brand_validate(data, brand, partial=self.request.command == "PATCH"))
        self.dirty = True
        return 200, self.brand_json(brand)

    def brand_delete(self, data, pk):
        self.state["brands"].remove(self.brand(pk))
        self.dirty = True
        return 204, None


# --- main ----------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description="Fake authentik API for orch's tests.")
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=9000, help="HTTP port (authentik: 9000)")
    parser.add_argument("--https-port", type=int, default=None,
                        help="also serve HTTPS here with the brand's web certificate (authentik: 9443)")
    parser.add_argument("--tls-reload-interval", type=float, default=0.0,
                        help="seconds between reloads of the brands' certificates for HTTPS (authentik: 180)")
    parser.add_argument("--state", default="/var/lib/fake-authentik/state.json", help="JSON state file")
    parser.add_argument("--log", default="/var/log/fake-authentik/requests.log", help="request log (JSON lines)")
    parser.add_argument("--env-file", default=None, help="compose .env with AUTHENTIK_BOOTSTRAP_* values")
    parser.add_argument("--version", dest="version", default=os.environ.get("FAKE_AUTHENTIK_VERSION", DEFAULT_VERSION),
                        help="authentik release to imitate, 2024.12.x to 2026.5.x")
    parser.add_argument("--ready-delay", type=float, default=0.0,
                        help="seconds during which /-/health/ready/ answers 503 and the API 502")
    parser.add_argument("--bootstrap-delay", type=float, default=0.0,
                        help="seconds after ready until the bootstrap token exists")
    parser.add_argument("--external-url", default=None,
                        help="scheme://host[:port] for issuer URLs (default: the request's scheme and Host)")
    parser.add_argument("--rsa-bits", type=int, default=2048, help="RSA key size (authentik uses 4096)")
    parser.add_argument("--legacy-ec-type", default="ellipticcurve",
                        help="private_key_type value for EC keys before 2025.12")
    options = parser.parse_args(argv)
    version = parse_version(options.version)
    if not SUPPORTED_MIN <= version <= SUPPORTED_MAX:
        parser.error("--version %s is outside 2024.12 to 2026.5, the releases this fake imitates" % options.version)
    return options


def start(options):
    """Binds the listeners and serves them on daemon threads: (fake, [http server, https server?])."""
    fake = FakeAuthentik(options)
    if options.log:
        os.makedirs(os.path.dirname(os.path.abspath(options.log)), exist_ok=True)
    handler = make_handler(fake)
    http_server = http.server.ThreadingHTTPServer((options.bind, options.port), handler)
    http_server.is_tls = False
    servers = [http_server]
    if options.https_port is not None:
        https_server = http.server.ThreadingHTTPServer((options.bind, options.https_port), handler)
        https_server.is_tls = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*fake.tls_files(fake.default_tls_keypair()))
        context.sni_callback = lambda sock, name, _ctx: setattr(sock, "context", fake.tls_context_for(name))
        # The handshake runs in the request's thread, so a silent client cannot block accept().
        https_server.socket = context.wrap_socket(https_server.socket, server_side=True,
                                                  do_handshake_on_connect=False)
        servers.append(https_server)
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, servers


def main(argv):
    options = parse_args(argv)
    _, servers = start(options)
    ports = " ".join("%s:%d" % ("https" if s.is_tls else "http", s.server_address[1]) for s in servers)
    print("fake authentik %s listening on %s %s" % (options.version, options.bind, ports), file=sys.stderr,
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
