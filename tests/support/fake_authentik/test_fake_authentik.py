"""Rules of the fake authentik API (stdlib unittest; run `python3 -m unittest` in this folder).

Each test class starts its own fake in-process on ephemeral ports with a temporary state file.
"""

import contextlib
import hashlib
import io
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_authentik  # noqa: E402

TOKEN = "bootstrap-token-for-tests-0123456789"
HAS_OPENSSL = shutil.which("openssl") is not None


class FakeServer:
    """One running fake: request helpers and direct access to its state file and request log."""

    def __init__(self, version="2026.5.6", extra_args=(), env=None, directory=None):
        self.dir = directory or tempfile.mkdtemp(prefix="fake-authentik-test-")
        self.env_file = os.path.join(self.dir, ".env")
        if not os.path.exists(self.env_file):
            with open(self.env_file, "w") as handle:
                handle.write(env if env is not None else
                             "PG_PASS=x\nAUTHENTIK_BOOTSTRAP_PASSWORD='pw'\nAUTHENTIK_BOOTSTRAP_TOKEN=%s\n" % TOKEN)
        self.state_path = os.path.join(self.dir, "state.json")
        self.log_path = os.path.join(self.dir, "requests.log")
        args = ["--bind", "127.0.0.1", "--port", "0", "--state", self.state_path, "--log", self.log_path,
                "--env-file", self.env_file, "--version", version] + list(extra_args)
        self.fake, self.servers = fake_authentik.start(fake_authentik.parse_args(args))
        self.port = self.servers[0].server_address[1]

    def stop(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()
        shutil.rmtree(self.fake.tls_dir, ignore_errors=True)

    def request(self, method, path, body=None, token=TOKEN, headers=None, raw=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = "Bearer " + token
        payload = raw
        if body is not None:
            payload = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        content_type = response.getheader("Content-Type") or ""
        parsed = json.loads(data) if data and "json" in content_type else data.decode()
        return response.status, parsed

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, body, **kwargs):
        return self.request("POST", path, body=body, **kwargs)

    def patch(self, path, body, **kwargs):
        return self.request("PATCH", path, body=body, **kwargs)

    def state(self):
        with open(self.state_path) as handle:
            return json.load(handle)

    def write_state(self, state):
        with open(self.state_path, "w") as handle:
            json.dump(state, handle)

    def one(self, path):
        status, body = self.get(path)
        assert status == 200, (status, body)
        assert body["pagination"]["count"] == 1, body
        return body["results"][0]

    def flow_pk(self, slug):
        return self.one("/api/v3/flows/instances/?slug=" + slug)["pk"]

    def keypair(self, name):
        return self.one("/api/v3/crypto/certificatekeypairs/?name=" + name.replace(" ", "%20"))

    def provider_body(self, **overrides):
        body = {"name": "proxmox",
                "authorization_flow": self.flow_pk("default-provider-authorization-implicit-consent"),
                "invalidation_flow": self.flow_pk("default-provider-invalidation-flow"),
                "redirect_uris": [{"matching_mode": "strict", "url": "https://pve1.example.com:8006"}]}
        body.update(overrides)
        return body


class ServerTest(unittest.TestCase):
    version = "2026.5.6"
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.server = FakeServer(cls.version, cls.extra_args)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.server.dir, ignore_errors=True)


class StartupAndBootstrap(unittest.TestCase):
    def test_ready_waits_then_token_works_only_after_bootstrap(self):
        server = self.track(FakeServer(extra_args=["--ready-delay", "1.5", "--bootstrap-delay", "1.5"]))
        try:
            self.assertEqual(server.get("/-/health/live/", token=None)[0], 200)
            self.assertEqual(server.get("/-/health/ready/", token=None)[0], 503)
            status, body = server.get("/api/v3/core/users/me/", headers={"Accept": "application/json"})
            self.assertEqual((status, body), (502, {"error": "authentik starting..."}))
            time.sleep(1.6)
            self.assertEqual(server.get("/-/health/ready/", token=None), (200, ""))
            self.assertEqual(server.get("/api/v3/core/users/me/"), (403, {"detail": "Token invalid/expired"}))
            time.sleep(1.6)
            status, body = server.get("/api/v3/core/users/me/")
            self.assertEqual(status, 200)
            self.assertEqual(body["user"]["username"], "akadmin")
        finally:
            server.stop()

    def tearDown(self):
        for directory in getattr(self, "dirs", []):
            shutil.rmtree(directory, ignore_errors=True)

    def track(self, server):
        self.dirs = getattr(self, "dirs", []) + [server.dir]
        return server

    def test_token_is_read_only_on_the_first_startup(self):
        server = self.track(FakeServer())
        self.assertEqual(server.get("/api/v3/admin/version/")[0], 200)
        server.stop()
        with open(server.env_file, "w") as handle:
            handle.write("AUTHENTIK_BOOTSTRAP_TOKEN=a-new-token\n")
        again = FakeServer(directory=server.dir)
        try:
            self.assertEqual(again.get("/api/v3/admin/version/")[0], 200)
            self.assertEqual(again.get("/api/v3/admin/version/", token="a-new-token")[0], 403)
        finally:
            again.stop()

    def test_without_bootstrap_variables_no_token_exists(self):
        server = self.track(FakeServer(env="PG_PASS=x\n"))
        try:
            self.assertEqual(server.get("/api/v3/admin/version/"), (403, {"detail": "Token invalid/expired"}))
            self.assertFalse(server.state()["setup"])
        finally:
            server.stop()

    def test_versions_outside_the_supported_range_are_refused(self):
        for version in ("2024.10.4", "2026.8.0"):
            with contextlib.redirect_stderr(io.StringIO()) as stderr, self.assertRaises(SystemExit):
                fake_authentik.parse_args(["--version", version])
            self.assertIn("outside 2024.12 to 2026.5", stderr.getvalue())
        self.assertEqual(fake_authentik.parse_args(["--version", "2025.10.2"]).version, "2025.10.2")


class AuthenticationAndRouting(ServerTest):
    def test_missing_wrong_and_unsupported_credentials_are_403_with_drf_bodies(self):
        s = self.server
        self.assertEqual(s.get("/api/v3/admin/version/", token=None),
                         (403, {"detail": "Authentication credentials were not provided."}))
        self.assertEqual(s.get("/api/v3/admin/version/", token="wrong"), (403, {"detail": "Token invalid/expired"}))
        self.assertEqual(s.get("/api/v3/admin/version/", token=None, headers={"Authorization": "Basic eDp5"}),
                         (403, {"detail": "Unsupported authentication type"}))

    def test_root_config_is_public_but_a_bad_token_still_fails(self):
        self.assertEqual(self.server.get("/api/v3/root/config/", token=None)[0], 200)
        self.assertEqual(self.server.get("/api/v3/root/config/", token="wrong")[0], 403)

    def test_version_endpoint_reports_the_imitated_release(self):
        status, body = self.server.get("/api/v3/admin/version/")
        self.assertEqual(status, 200)
        self.assertEqual(body["version_current"], "2026.5.6")

    def test_unknown_paths_missing_slash_and_wrong_methods(self):
        s = self.server
        self.assertEqual(s.get("/api/v3/nothing/"), (404, {"detail": "Not found."}))
        self.assertEqual(s.get("/api/v3/providers/oauth2")[0], 404)
        self.assertEqual(s.get("/api/v3/propertymappings/scope/")[0], 404, "pre-2024.8 path")
        self.assertEqual(s.request("DELETE", "/api/v3/crypto/certificatekeypairs/"),
                         (405, {"detail": 'Method "DELETE" not allowed.'}))
        self.assertEqual(s.get("/api/v3/crypto/certificatekeypairs/generate/")[0], 405)

    def test_malformed_json_and_non_object_bodies(self):
        s = self.server
        status, body = s.request("POST", "/api/v3/providers/oauth2/", raw=b"{nope",
                                 headers={"Content-Type": "application/json"})
        self.assertEqual(status, 400)
        self.assertTrue(body["detail"].startswith("JSON parse error"))
        self.assertEqual(s.request("POST", "/api/v3/providers/oauth2/", body=[1]),
                         (400, {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}))

    def test_request_log_has_method_path_status_and_no_token(self):
        self.server.get("/api/v3/admin/version/")
        with open(self.server.log_path) as handle:
            log = handle.read()
        self.assertIn('"path": "/api/v3/admin/version/", "status": 200', log)
        self.assertNotIn(TOKEN, log)
        self.assertNotIn(TOKEN, json.dumps(self.server.state()), "only a digest of the token is stored")


class Seeds(ServerTest):
    def test_default_flows_and_retrieve_by_slug(self):
        for slug in ("default-provider-authorization-implicit-consent",
                     "default-provider-authorization-explicit-consent", "default-provider-invalidation-flow",
                     "default-authentication-flow", "default-invalidation-flow"):
            self.assertEqual(self.server.one("/api/v3/flows/instances/?slug=" + slug)["slug"], slug)
        status, body = self.server.get("/api/v3/flows/instances/default-provider-invalidation-flow/")
        self.assertEqual((status, body["designation"]), (200, "invalidation"))
        self.assertEqual(self.server.get("/api/v3/flows/instances/nope/"),
                         (404, {"detail": "No Flow matches the given query."}))

    def test_scope_mappings_filter_by_repeated_managed(self):
        prefix = "goauthentik.io/providers/oauth2/scope-"
        query = "&".join("managed=" + prefix + name for name in ("openid", "email", "profile"))
        status, body = self.server.get("/api/v3/propertymappings/provider/scope/?" + query)
        self.assertEqual(status, 200)
        self.assertEqual(sorted(m["scope_name"] for m in body["results"]), ["email", "openid", "profile"])
        self.assertEqual(self.server.one("/api/v3/propertymappings/provider/scope/?managed=" + prefix +
                                         "entitlements")["scope_name"], "entitlements")

    def test_self_signed_pair_exists_and_is_rsa(self):
        kp = self.server.keypair("authentik Self-signed Certificate")
        self.assertEqual(kp["key_type"], "rsa")
        self.assertTrue(kp["private_key_available"])
        self.assertNotIn("certificate_data", kp, "write-only")

    def test_pagination_shape_and_invalid_page(self):
        status, body = self.server.get("/api/v3/flows/instances/?page_size=3&page=2")
        self.assertEqual(status, 200)
        pagination = body["pagination"]
        self.assertEqual((pagination["current"], pagination["previous"], pagination["next"]), (2, 1, 3))
        self.assertEqual((pagination["start_index"], pagination["end_index"]), (4, 6))
        self.assertEqual(pagination["total_pages"], -(-pagination["count"] // 3))
        self.assertEqual(len(body["results"]), 3)
        self.assertIn("autocomplete", body)
        self.assertEqual(self.server.get("/api/v3/flows/instances/?page=99"), (404, {"detail": "Invalid page."}))


@unittest.skipUnless(HAS_OPENSSL, "openssl CLI needed for real key pairs")
class KeyPairs(ServerTest):
    def generate(self, name, alg=None, **extra):
        body = {"common_name": name, "validity_days": 30}
        if alg:
            body["alg"] = alg
        body.update(extra)
        return self.server.post("/api/v3/crypto/certificatekeypairs/generate/", body)

    def test_generate_rsa_and_ecdsa_report_their_key_type(self):
        status, rsa = self.generate("kp-rsa", "rsa", subject_alt_name="auth.example.com")
        self.assertEqual((status, rsa["key_type"], rsa["name"]), (200, "rsa", "kp-rsa"))
        self.assertEqual(rsa["cert_subject"], "OU=Self-signed,O=authentik,CN=kp-rsa")
        status, ec = self.generate("kp-ec", "ecdsa")
        self.assertEqual((status, ec["key_type"]), (200, "ec"))
        status, default = self.generate("kp-default")
        self.assertEqual(default["key_type"], "rsa", "alg defaults to rsa")

    def test_generate_validation(self):
        self.assertEqual(self.generate("kp-dup")[0], 200)
        self.assertEqual(self.generate("kp-dup"), (400, {"common_name": ["This field must be unique."]}))
        self.assertEqual(self.generate("x", "dsa"), (400, {"alg": ['"dsa" is not a valid choice.']}))
        status, body = self.server.post("/api/v3/crypto/certificatekeypairs/generate/", {})
        self.assertEqual(body, {"common_name": ["This field is required."],
                                "validity_days": ["This field is required."]})

    def test_import_keeps_fingerprint_and_rejects_duplicates_and_garbage(self):
        status, original = self.generate("kp-source", "rsa")
        cert = self.server.get("/api/v3/crypto/certificatekeypairs/%s/view_certificate/" % original["pk"])[1]["data"]
        key = self.server.get("/api/v3/crypto/certificatekeypairs/%s/view_private_key/" % original["pk"])[1]["data"]
        status, imported = self.server.post("/api/v3/crypto/certificatekeypairs/",
                                            {"name": "kp-imported", "certificate_data": cert, "key_data": key})
        self.assertEqual(status, 201)
        self.assertEqual(imported["fingerprint_sha256"], original["fingerprint_sha256"])
        self.assertEqual(imported["key_type"], "rsa")
        status, body = self.server.post("/api/v3/crypto/certificatekeypairs/",
                                        {"name": "kp-imported", "certificate_data": cert})
        self.assertEqual(body, {"name": ["Certificate-Key Pair with this name already exists."]})
        status, body = self.server.post("/api/v3/crypto/certificatekeypairs/",
                                        {"name": "kp-bad", "certificate_data": "hello", "key_data": "nope"})
        self.assertEqual(body, {"certificate_data": ["Unable to load certificate."],
                                "key_data": ["Unable to load private key (possibly encrypted?)."]})

    def test_retrieve_patch_delete(self):
        status, kp = self.generate("kp-life", "rsa")
        path = "/api/v3/crypto/certificatekeypairs/%s/" % kp["pk"]
        self.assertEqual(self.server.patch(path, {"name": "kp-renamed"})[1]["name"], "kp-renamed")
        self.assertEqual(self.server.request("DELETE", path), (204, ""))
        self.assertEqual(self.server.get(path), (404, {"detail": "No CertificateKeyPair matches the given query."}))
        self.assertEqual(self.server.get("/api/v3/crypto/certificatekeypairs/not-a-uuid/"),
                         (404, {"detail": "Not found."}))

    def test_ed25519_is_accepted_on_2026_5(self):
        status, body = self.generate("kp-ed", "ed25519")
        self.assertEqual((status, body["key_type"]), (200, "ed25519"))


@unittest.skipUnless(HAS_OPENSSL, "openssl CLI needed for real key pairs")
class OldVersionKeyPairs(ServerTest):
    version = "2024.12.3"

    def test_private_key_type_field_and_include_details(self):
        status, ec = self.server.post("/api/v3/crypto/certificatekeypairs/generate/",
                                      {"common_name": "old-ec", "validity_days": 5, "alg": "ecdsa"})
        self.assertEqual(status, 200)
        self.assertNotIn("key_type", ec)
        self.assertEqual(ec["private_key_type"], "ellipticcurve")
        rsa = self.server.keypair("authentik Self-signed Certificate")
        self.assertEqual(rsa["private_key_type"], "rsa")
        status, body = self.server.get("/api/v3/crypto/certificatekeypairs/?include_details=false")
        self.assertTrue(all(kp["fingerprint_sha256"] is None and kp["private_key_type"] is None
                            for kp in body["results"]))
        self.assertNotIn("autocomplete", body)

    def test_ed25519_is_not_a_choice_before_2026_2(self):
        status, body = self.server.post("/api/v3/crypto/certificatekeypairs/generate/",
                                        {"common_name": "old-ed", "validity_days": 5, "alg": "ed25519"})
        self.assertEqual((status, body), (400, {"alg": ['"ed25519" is not a valid choice.']}))


class Providers(ServerTest):
    def test_required_fields(self):
        status, body = self.server.post("/api/v3/providers/oauth2/", {"name": "p-required"})
        self.assertEqual(status, 400)
        self.assertEqual(body, {"authorization_flow": ["This field is required."],
                                "invalidation_flow": ["This field is required."],
                                "redirect_uris": ["This field is required."]})

    def test_rejections_have_drf_shapes(self):
        s = self.server
        missing = "00000000-0000-4000-8000-000000000000"
        status, body = s.post("/api/v3/providers/oauth2/", s.provider_body(
            name="p-bad", authorization_flow=missing, redirect_uris="https://pve:8006", client_type="secret",
            signing_key=missing, invalidation_flow=None))
        self.assertEqual(status, 400)
        self.assertEqual(body["authorization_flow"], ['Invalid pk "%s" - object does not exist.' % missing])
        self.assertEqual(body["invalidation_flow"], ["This field may not be null."])
        self.assertEqual(body["redirect_uris"],
                         {"non_field_errors": ['Expected a list of items but got type "str".']})
        self.assertEqual(body["client_type"], ['"secret" is not a valid choice.'])
        self.assertEqual(body["signing_key"], ['Invalid pk "%s" - object does not exist.' % missing])
        status, body = s.post("/api/v3/providers/oauth2/", s.provider_body(
            name="p-bad2", redirect_uris=[{"matching_mode": "exact", "url": "https://a"}, {"matching_mode": "strict"}]))
        self.assertEqual(body, {"redirect_uris": [{"matching_mode": ['"exact" is not a valid choice.']},
                                                  {"url": ["This field is required."]}]})
        status, body = s.post("/api/v3/providers/oauth2/", s.provider_body(
            name="p-bad3", redirect_uris=[{"matching_mode": "regex", "url": "https://(a"}]))
        self.assertEqual(body, {"redirect_uris": ["Invalid Regex Pattern: https://(a"]})

    def test_create_generates_credentials_and_defaults(self):
        s = self.server
        kp = s.keypair("authentik Self-signed Certificate")
        status, body = s.post("/api/v3/providers/oauth2/", s.provider_body(
            name="p-create", signing_key=kp["pk"], unknown_field="ignored like DRF does"))
        self.assertEqual(status, 201)
        self.assertIsInstance(body["pk"], int)
        self.assertEqual((len(body["client_id"]), len(body["client_secret"])), (40, 128))
        self.assertEqual((body["client_type"], body["sub_mode"], body["issuer_mode"]),
                         ("confidential", "hashed_user_id", "per_provider"))
        self.assertIsNone(body["encryption_key"])
        self.assertEqual(body["redirect_uris"], [{"matching_mode": "strict", "url": "https://pve1.example.com:8006",
                                                  "redirect_uri_type": "authorization"}])
        self.assertIn("grant_types", body)
        self.assertEqual(s.post("/api/v3/providers/oauth2/", s.provider_body(name="p-create")),
                         (400, {"name": ["provider with this name already exists."]}))
        status, other = s.post("/api/v3/providers/oauth2/", s.provider_body(name="p-other",
                                                                            client_id=body["client_id"]))
        self.assertEqual(other, {"client_id": ["OAuth2/OpenID Provider with this Client ID already exists."]})

    def test_patch_replaces_lists_and_put_needs_required_fields(self):
        s = self.server
        status, created = s.post("/api/v3/providers/oauth2/", s.provider_body(name="p-patch", redirect_uris=[
            {"matching_mode": "strict", "url": "https://a:8006"}, {"matching_mode": "strict", "url": "https://b:8006"}]))
        path = "/api/v3/providers/oauth2/%d/" % created["pk"]
        status, patched = s.patch(path, {"redirect_uris": [{"matching_mode": "strict", "url": "https://b:8006"}]})
        self.assertEqual(status, 200)
        self.assertEqual([r["url"] for r in patched["redirect_uris"]], ["https://b:8006"])
        self.assertEqual(patched["client_secret"], created["client_secret"], "untouched fields stay")
        status, body = s.request("PUT", path, body={"name": "p-patch"})
        self.assertEqual(status, 400)
        self.assertIn("redirect_uris", body)
        self.assertEqual(s.get("/api/v3/providers/oauth2/?name=p-patch")[1]["pagination"]["count"], 1)
        self.assertEqual(s.get("/api/v3/providers/oauth2/x/"), (404, {"detail": "Not found."}))
        self.assertEqual(s.get("/api/v3/providers/oauth2/9999/"),
                         (404, {"detail": "No OAuth2Provider matches the given query."}))

    def test_state_file_edits_are_seen_by_the_next_request(self):
        s = self.server
        status, created = s.post("/api/v3/providers/oauth2/", s.provider_body(name="p-tamper"))
        state = s.state()
        for provider in state["providers"]:
            if provider["pk"] == created["pk"]:
                provider["redirect_uris"] = []
        s.write_state(state)
        self.assertEqual(s.get("/api/v3/providers/oauth2/%d/" % created["pk"])[1]["redirect_uris"], [])


class OldVersionProviders(ServerTest):
    version = "2024.12.3"

    def test_2024_12_shapes(self):
        s = self.server
        status, body = s.post("/api/v3/providers/oauth2/", s.provider_body(
            name="old", grant_types=["bogus"],
            redirect_uris=[{"matching_mode": "strict", "url": "https://a:8006", "redirect_uri_type": "bogus"}]))
        self.assertEqual(status, 201, "fields unknown to 2024.12 are ignored, not validated")
        self.assertNotIn("grant_types", body)
        self.assertNotIn("logout_uri", body)
        self.assertNotIn("refresh_token_threshold", body)
        self.assertEqual(body["redirect_uris"], [{"matching_mode": "strict", "url": "https://a:8006"}])


class ApplicationsAndDiscovery(ServerTest):
    extra_args = ()

    def make_provider(self, name, **overrides):
        status, body = self.server.post("/api/v3/providers/oauth2/", self.server.provider_body(name=name, **overrides))
        self.assertEqual(status, 201, body)
        return body

    def test_application_rules(self):
        s = self.server
        provider = self.make_provider("app-rules")
        status, app = s.post("/api/v3/core/applications/", {"name": "Proxmox VE", "slug": "app-rules",
                                                             "provider": provider["pk"]})
        self.assertEqual(status, 201)
        self.assertEqual((app["policy_engine_mode"], app["provider_obj"]["name"]), ("any", "app-rules"))
        self.assertEqual(app["launch_url"], "https://pve1.example.com:8006")
        status, body = s.post("/api/v3/core/applications/", {"name": "x", "slug": "app-rules", "provider": 9999})
        self.assertEqual(body, {"slug": ["Application with this slug already exists."],
                                "provider": ['Invalid pk "9999" - object does not exist.']})
        status, body = s.post("/api/v3/core/applications/", {"name": "x", "slug": "bad slug",
                                                             "provider": provider["pk"]})
        self.assertEqual(body["slug"], ["Enter a valid “slug” consisting of letters, numbers, underscores or "
                                        "hyphens."])
        self.assertEqual(body["provider"], ["Application with this provider already exists."])
        self.assertEqual(s.get("/api/v3/providers/oauth2/%d/" % provider["pk"])[1]["assigned_application_slug"],
                         "app-rules")
        status, patched = s.patch("/api/v3/core/applications/app-rules/", {"group": "Infra"})
        self.assertEqual((status, patched["group"], patched["name"]), (200, "Infra", "Proxmox VE"))
        self.assertEqual(s.one("/api/v3/core/applications/?slug=app-rules")["pk"], app["pk"])
        self.assertEqual(s.request("DELETE", "/api/v3/providers/oauth2/%d/" % provider["pk"])[0], 204)
        self.assertIsNone(s.get("/api/v3/core/applications/app-rules/")[1]["provider"])
        self.assertEqual(s.request("DELETE", "/api/v3/core/applications/app-rules/")[0], 204)
        self.assertEqual(s.get("/api/v3/core/applications/app-rules/"),
                         (404, {"detail": "No Application matches the given query."}))

    def discovery(self, slug, host="auth.example.com"):
        return self.server.get("/application/o/%s/.well-known/openid-configuration" % slug, token=None,
                               headers={"Host": host, "X-Forwarded-Proto": "https"})

    def test_discovery_issuer_and_signing_algorithm(self):
        s = self.server
        self.assertEqual(self.discovery("nobody")[0], 404)
        provider = self.make_provider("disc-none")
        s.post("/api/v3/core/applications/", {"name": "n", "slug": "disc-none", "provider": provider["pk"]})
        status, doc = self.discovery("disc-none")
        self.assertEqual(status, 200)
        self.assertEqual(doc["issuer"], "https://auth.example.com/application/o/disc-none/")
        self.assertEqual(doc["id_token_signing_alg_values_supported"], ["HS256"])
        if not HAS_OPENSSL:
            return
        rsa = s.keypair("authentik Self-signed Certificate")
        s.patch("/api/v3/providers/oauth2/%d/" % provider["pk"], {"signing_key": rsa["pk"]})
        self.assertEqual(self.discovery("disc-none")[1]["id_token_signing_alg_values_supported"], ["RS256"])
        status, ec = s.post("/api/v3/crypto/certificatekeypairs/generate/",
                            {"common_name": "disc-ec", "validity_days": 5, "alg": "ecdsa"})
        s.patch("/api/v3/providers/oauth2/%d/" % provider["pk"], {"signing_key": ec["pk"]})
        self.assertEqual(self.discovery("disc-none")[1]["id_token_signing_alg_values_supported"], ["ES256"])


class ExternalUrl(ServerTest):
    extra_args = ("--external-url", "https://sso.example.org")

    def test_external_url_overrides_the_host_header(self):
        s = self.server
        status, provider = s.post("/api/v3/providers/oauth2/", s.provider_body(name="ext"))
        s.post("/api/v3/core/applications/", {"name": "ext", "slug": "ext", "provider": provider["pk"]})
        status, doc = s.get("/application/o/ext/.well-known/openid-configuration", token=None)
        self.assertEqual(doc["issuer"], "https://sso.example.org/application/o/ext/")


@unittest.skipUnless(HAS_OPENSSL, "openssl CLI needed for TLS")
class BrandsAndTls(ServerTest):
    extra_args = ("--https-port", "0")

    def peer_fingerprint(self, server_name):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        port = self.server.servers[1].server_address[1]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=server_name) as tls:
                der = tls.getpeercert(binary_form=True)
        return ":".join("%02x" % b for b in hashlib.sha256(der).digest())

    def test_web_certificate_is_served_for_the_default_brand(self):
        s = self.server
        brand = s.one("/api/v3/core/brands/?default=true")
        self.assertEqual(brand["domain"], "authentik-default")
        self.assertIsNone(brand["web_certificate"])
        before = self.peer_fingerprint("auth.example.com")
        path = "/api/v3/core/brands/%s/" % brand["brand_uuid"]
        missing = "00000000-0000-4000-8000-000000000000"
        self.assertEqual(s.patch(path, {"web_certificate": missing}),
                         (400, {"web_certificate": ['Invalid pk "%s" - object does not exist.' % missing]}))
        status, kp = s.post("/api/v3/crypto/certificatekeypairs/generate/",
                            {"common_name": "auth.example.com", "validity_days": 5})
        status, patched = s.patch(path, {"web_certificate": kp["pk"]})
        self.assertEqual((status, patched["web_certificate"]), (200, kp["pk"]))
        after = self.peer_fingerprint("auth.example.com")
        self.assertNotEqual(before, after)
        self.assertEqual(after, kp["fingerprint_sha256"])


if __name__ == "__main__":
    unittest.main()
