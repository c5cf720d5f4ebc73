#!/usr/bin/python3
"""Fake Proxmox VE access-control tools for orch's integration tests.

One implementation behind the `pveum`, `pvesh` and `pveversion` wrappers. It reads and writes
/etc/pve/domains.cfg and /etc/pve/user.cfg in the exact format of libpve-access-control and
answers with the real texts, JSON shapes and exit status (255) of the version it pretends to be.
The facts it follows are in /work/shared/reference/proxmox-realm.md (and in README.md beside
this file); where they name a source line, the comment here names it too.

Environment (for developing the fake outside a container):
  FAKE_PVE_ETC    instead of /etc/pve
  FAKE_PVE_STATE  instead of /var/lib/fake-pve (per-node state: version, members, lock timeout)
"""

import fcntl
import hashlib
import json
import locale
import os
import random
import re
import sys
import time
import urllib.parse

PVE_DIR = os.environ.get("FAKE_PVE_ETC", "/etc/pve")
STATE_DIR = os.environ.get("FAKE_PVE_STATE", "/var/lib/fake-pve")


# --------------------------------------------------------------------------------------------
# errors


class PveError(Exception):
    """A Perl `die`: the text goes to stderr as is, the exit status is 255."""

    def __init__(self, text):
        super().__init__(text)
        self.text = text if text.endswith("\n") else text + "\n"


class ParamError(Exception):
    """A PVE::Exception with code 400 (raise_param_exc / raise ... code => 400); the CLI adds usage."""

    def __init__(self, msg, errors=None):
        super().__init__(msg)
        self.msg = msg
        self.errors = errors or {}

    def render(self, usage):
        # PVE::Exception::stringify: "<code> <msg>", one "<param>: <error>" line per error, usage.
        text = "400 " + self.msg
        if not text.endswith("\n"):
            text += "\n"
        for key in sorted(self.errors):
            text += "%s: %s\n" % (key, self.errors[key])
        if usage:
            text += usage
            if not text.endswith("\n"):
                text += "\n"
        return text


def die(text):
    raise PveError(text)


# --------------------------------------------------------------------------------------------
# per-node state written by install.sh


def version_key(version):
    """'8.2.2' or '7.1-3' -> (8, 2, 2)."""
    return tuple(int(part) for part in re.findall(r"\d+", version))


class Node:
    def __init__(self):
        try:
            with open(os.path.join(STATE_DIR, "config.json"), encoding="utf-8") as handle:
                self.config = json.load(handle)
        except (OSError, ValueError):
            self.config = {}
        self.access_control = self.config.get("access_control", "8.2.2")
        self.ac = version_key(self.access_control)

    def at_least(self, version):
        return self.ac >= version_key(version)

    def members(self):
        """/etc/pve/.members as pmxcfs renders it for this node (install.sh writes it)."""
        try:
            with open(os.path.join(PVE_DIR, ".members"), encoding="utf-8") as handle:
                return json.load(handle)
        except (OSError, ValueError):
            return {}

    def nodename(self):
        return self.members().get("nodename") or os.uname().nodename.split(".")[0]

    def quorate(self):
        cluster = self.members().get("cluster")
        # A standalone node has no quorum to lose.
        return cluster is None or int(cluster.get("quorate", 0)) == 1

    def lock_timeout(self):
        return float(self.config.get("lock_timeout", 10))


NODE = None


# --------------------------------------------------------------------------------------------
# pmxcfs file access: cfs_lock_file and file_set_contents


class CfsLock:
    """PVE::Cluster::cfs_lock_file: a lock shared by every node that mounts this /etc/pve.

    The real lock is mkdir /etc/pve/priv/lock/<id> on pmxcfs, retried once a second for 10 s;
    without quorum mkdir fails until the timeout and the error becomes "no quorum!". Here an
    flock on a file in the shared volume serializes the nodes of one cluster the same way.
    """

    def __init__(self, filename, errmsg):
        self.lockid = "file-" + filename.replace(".", "_")
        self.errmsg = errmsg
        self.handle = None

    def __enter__(self):
        lockdir = os.path.join(PVE_DIR, "priv", "lock")
        try:
            os.makedirs(lockdir, exist_ok=True)
        except OSError:
            pass
        if not os.path.isdir(lockdir):
            self._fail("pve cluster filesystem not online.\n")
        self.handle = open(os.path.join(lockdir, ".fake-flock-" + self.lockid), "a")
        deadline = time.monotonic() + NODE.lock_timeout()
        while True:
            if NODE.quorate():
                try:
                    fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return self
                except BlockingIOError:
                    pass
            if time.monotonic() + 1 > deadline:
                break
            sys.stderr.write("trying to acquire cfs lock '%s' ...\n" % self.lockid)
            sys.stderr.flush()
            time.sleep(1)
        self.handle.close()
        self.handle = None
        # Cluster.pm: $err = "no quorum!\n" if !$got_lock && !check_cfs_quorum(1);
        self._fail("no quorum!\n" if not NODE.quorate() else "got lock request timeout\n")

    def _fail(self, err):
        text = "cfs-lock '%s' error: %s" % (self.lockid, err)
        die("%s: %s" % (self.errmsg, text) if self.errmsg else text)

    def __exit__(self, kind, value, traceback):
        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
        if isinstance(value, PveError) and self.errmsg and not getattr(value, "prefixed", False):
            # lock_domain_config / lock_user_config: die "$errmsg: $err"
            value.text = "%s: %s" % (self.errmsg, value.text)
            value.prefixed = True
        return False


def read_cfs(filename):
    try:
        with open(os.path.join(PVE_DIR, filename), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return b""


def write_cfs(filename, data):
    """PVE::Tools::file_set_contents: "<file>.tmp.<pid>", then rename (atomic for readers)."""
    path = os.path.join(PVE_DIR, filename)
    temp = "%s.tmp.%d" % (path, os.getpid())
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temp, 0o640)
    try:
        import grp

        os.chown(temp, 0, grp.getgrnam("www-data").gr_gid)
    except (KeyError, OSError):
        pass
    os.rename(temp, path)


def warn(text):
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


# --------------------------------------------------------------------------------------------
# text encoding: PVE::Tools::encode_text / decode_text and the CLI's locale decoding


def encode_text(text):
    # uri_escape(encode_utf8($text), "^\x20-\x39\x3b-\x7e"): control, ':', DEL and non-ASCII
    # bytes are escaped; '%' itself is not (a real round-trip quirk).
    out = []
    for byte in text.encode("utf-8"):
        if 0x20 <= byte <= 0x39 or 0x3B <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append("%%%02X" % byte)
    return "".join(out)


def decode_text(data):
    return urllib.parse.unquote_to_bytes(data).decode("utf-8", "replace")


def locale_is_utf8():
    try:
        locale.setlocale(locale.LC_CTYPE, "")
        codeset = locale.nl_langinfo(locale.CODESET)
    except (locale.Error, AttributeError):
        return False
    return codeset.replace("-", "").lower() == "utf8"


def decode_arg(raw):
    """Encode::decode('locale', ...): under LANG unset/C every non-ASCII byte becomes U+FFFD."""
    data = os.fsencode(raw)
    return data.decode("utf-8" if locale_is_utf8() else "ascii", "replace")


# --------------------------------------------------------------------------------------------
# JSON schema pieces (PVE::JSONSchema): formats, patterns, lengths


REALM_RE = r"[A-Za-z][A-Za-z0-9.\-_]+"
USER_RE = r"[^\s:/]+"
CONFIGID_RE = r"[a-z][a-z0-9_-]+"
ROLE_RE = r"[A-Za-z0-9.\-_]+"


def groupname_regex():
    # ac 8.2.1 .. 9.0.4 also let ( ) ? ^ : through (fixed in 9.0.5, fix #7102).
    if NODE.at_least("8.2.1") and not NODE.at_least("9.0.5"):
        return r"[A-Za-z0-9.\-_()?^:]+"
    return r"[A-Za-z0-9.\-_]+"


def verify_realm(value):
    if not re.fullmatch(REALM_RE, value):
        raise ValueError("value does not look like a valid realm\n")


def verify_username(value):
    if len(value) < 3:
        raise ValueError("user name '%s' is too short\n" % value)
    if len(value) > 64:
        raise ValueError("user name '%s' is too long (%d > 64)\n" % (value, len(value)))
    if not re.fullmatch("(%s)@(%s)" % (USER_RE, REALM_RE), value):
        raise ValueError("value '%s' does not look like a valid user name\n" % value)


def verify_groupname(value):
    if not re.fullmatch(groupname_regex(), value):
        raise ValueError("group name '%s' contains invalid characters\n" % value)


def verify_rolename(value):
    if not re.fullmatch(ROLE_RE, value):
        raise ValueError("role name '%s' contains invalid characters\n" % value)


def verify_configid(value):
    if not re.fullmatch(CONFIGID_RE, value, re.IGNORECASE):
        raise ValueError("invalid configuration ID '%s'\n" % value)


def verify_tokenid(value):
    if not re.fullmatch(r"(%s)@(%s)!([A-Za-z][A-Za-z0-9.\-_]+)" % (USER_RE, REALM_RE), value):
        raise ValueError("value '%s' does not look like a valid token ID\n" % value)


FORMATS = {
    "pve-realm": verify_realm,
    "pve-userid": verify_username,
    "pve-groupid": verify_groupname,
    "pve-configid": verify_configid,
    "pve-userid-list": verify_username,
    "pve-groupid-list": verify_groupname,
    "pve-roleid-list": verify_rolename,
    "pve-configid-list": verify_configid,
    "pve-tokenid-list": verify_tokenid,
}


def split_list(value):
    """PVE::Tools::split_list: split on ',', ';', whitespace and NUL; drop empty items."""
    if value is None:
        return []
    return [item for item in re.split(r"[,;\s\0]+", value) if item != ""]


def check_prop(name, value, schema, errors):
    """JSONSchema::check_prop for the scalar types these commands use; first error wins."""
    if schema.get("type") == "boolean":
        return
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors[name] = "value may only be %d characters long" % schema["maxLength"]
        return
    if "minLength" in schema and len(value) < schema["minLength"]:
        errors[name] = "value must be at least %d characters long" % schema["minLength"]
        return
    if "pattern" in schema and not re.fullmatch("(?:%s)" % schema["pattern"], value):
        errors[name] = "value does not match the regex pattern"
        return
    if "enum" in schema and value not in schema["enum"]:
        errors[name] = "value '%s' does not have a value in the enumeration '%s'" % (
            value,
            ", ".join(schema["enum"]),
        )
        return
    verifier = FORMATS.get(schema.get("format", ""))
    if verifier:
        items = split_list(value) if schema["format"].endswith("-list") else [value]
        for item in items:
            try:
                verifier(item)
            except ValueError as error:
                errors[name] = "invalid format - %s" % error
                return


def validate(params, schema):
    errors = {}
    for name, prop in schema.items():
        if name not in params:
            if not prop.get("optional"):
                errors[name] = "property is missing and it is not optional"
            continue
        value = params[name]
        if prop.get("type") == "integer":
            if not re.fullmatch(r"[+-]?\d+", "%s" % value):
                errors[name] = "type check ('integer') failed - got '%s'" % value
            else:
                params[name] = int(value)
        elif isinstance(value, str):
            check_prop(name, value, prop, errors)
    if errors:
        raise ParamError("Parameter verification failed.\n", errors)


def parse_boolean(value):
    if re.fullmatch(r"1|true|yes|on", value, re.IGNORECASE):
        return 1
    if re.fullmatch(r"0|false|no|off", value, re.IGNORECASE):
        return 0
    return None


# --------------------------------------------------------------------------------------------
# realm plugins and their options per libpve-access-control version (reference §1)

BOOL = {"type": "boolean", "optional": 1}
STR = {"type": "string", "optional": 1}
URI_VALUE_PATTERN = r'[^\x00-\x1F\x7F <>#"]*'

LDAP_COMMON = [
    "server2", "port", "secure", "sslversion", "verify", "capath", "cert", "certkey", "bind_dn",
    "filter", "sync-defaults-options", "sync_attributes", "user_classes", "group_dn",
    "group_name_attr", "group_filter", "group_classes", "mode", "case-sensitive", "default",
    "comment", "tfa",
]  # fmt: skip


def realm_properties():
    """The unified property list of all realm types (SectionConfig 'unified mode')."""
    props = {
        "type": {"type": "string", "enum": ["ad", "ldap", "openid", "pam", "pve"]},
        "comment": {"type": "string", "optional": 1, "maxLength": 4096},
        "default": BOOL,
        "tfa": {"type": "string", "optional": 1, "maxLength": 128},
        "issuer-url": {"type": "string", "optional": 1, "maxLength": 256},
        "client-id": {"type": "string", "optional": 1, "maxLength": 256},
        "client-key": {"type": "string", "optional": 1, "maxLength": 256},
        "autocreate": BOOL,
        "username-claim": STR,
        "prompt": {
            "type": "string",
            "optional": 1,
            "pattern": r"(?:none|login|consent|select_account|\S+)",
        },
        "scopes": STR,
        "acr-values": dict(STR),
    }
    if NODE.at_least("8.1.0"):
        props["acr-values"] = dict(STR, pattern=URI_VALUE_PATTERN)
    if NODE.at_least("8.2.1"):
        # 8.2.1 shipped the class as a literal string; 8.2.2 "fix overly strict groups-claim regex".
        claim = r"[A-Za-z0-9\.\-_]+" if NODE.at_least("8.2.2") else r"A-Za-z0-9.-_"
        props["groups-claim"] = {"type": "string", "optional": 1, "pattern": claim, "maxLength": 256}
        props["groups-autocreate"] = BOOL
        props["groups-overwrite"] = BOOL
        props["query-userinfo"] = BOOL
    if NODE.at_least("9.1.1"):
        props["audiences"] = dict(STR, pattern=URI_VALUE_PATTERN)
    for key in ["server1", "base_dn", "user_attr", "domain"] + LDAP_COMMON:
        props.setdefault(key, dict(STR))
    for key in ["secure", "verify", "case-sensitive"]:
        props[key] = BOOL
    return props


def plugin_options(realm_type):
    """Plugin->options(): key -> {'optional': bool, 'fixed': bool}; None for unknown types."""
    if realm_type in ("pam", "pve"):
        return {key: {"optional": 1} for key in ("default", "comment", "tfa")}
    if realm_type == "openid":
        opts = {"issuer-url": {}, "client-id": {}, "username-claim": {"optional": 1, "fixed": 1}}
        for key in ("client-key", "autocreate", "default", "comment", "prompt", "scopes", "acr-values"):
            opts[key] = {"optional": 1}
        if NODE.at_least("8.2.1"):
            for key in ("groups-claim", "groups-autocreate", "groups-overwrite", "query-userinfo"):
                opts[key] = {"optional": 1}
        if NODE.at_least("9.1.1"):
            opts["audiences"] = {"optional": 1}
        return opts
    if realm_type == "ldap":
        opts = {"server1": {}, "base_dn": {}, "user_attr": {}}
    elif realm_type == "ad":
        opts = {"server1": {}, "domain": {}, "base_dn": {"optional": 1}, "user_attr": {"optional": 1}}
    else:
        return None
    for key in LDAP_COMMON:
        opts[key] = {"optional": 1}
    return opts


REALM_TYPES = ("ad", "ldap", "openid", "pam", "pve")


def check_value(realm_type, key, value, props):
    """SectionConfig::check_value with skipSchemaCheck: booleans become numbers."""
    opts = plugin_options(realm_type)
    if opts is None:
        raise ValueError("unknown section type '%s'\n" % realm_type)
    if key not in opts:
        raise ValueError("unexpected property '%s'\n" % key)
    if key not in props:
        raise ValueError("unknown property type\n")
    if props[key]["type"] == "boolean":
        parsed = parse_boolean(value) if isinstance(value, str) else int(bool(value))
        if parsed is None:
            raise ValueError("type check ('boolean') failed - got '%s'\n" % value)
        return parsed
    if "\n" in value or "\r" in value:
        raise ValueError("property contains a line feed\n")
    return value


def check_config(realm_type, params, create):
    """SectionConfig::check_config: unexpected keys first, then required keys on create."""
    opts = plugin_options(realm_type)
    props = realm_properties()
    settings = {"type": realm_type}
    for key, value in params.items():
        if key == "type":
            continue
        if not create and key in opts and opts[key].get("fixed"):
            die("can't change value of fixed parameter '%s'\n" % key)
        try:
            settings[key] = check_value(realm_type, key, value, props)
        except ValueError as error:
            die(str(error))
    if create:
        for key in sorted(opts, key=lambda k: (k != "issuer-url", k)):
            if not opts[key].get("optional") and key not in params:
                die("missing value for required option '%s'\n" % key)
    return settings


# --------------------------------------------------------------------------------------------
# domains.cfg (PVE::Auth::Plugin on PVE::SectionConfig)


class Domains:
    FILE = "domains.cfg"

    def __init__(self):
        raw = read_cfs(self.FILE)
        self.digest = hashlib.sha1(raw).hexdigest()
        self.ids = {}
        self.order = {}
        self._parse(raw.decode("utf-8", "replace"))

    def _parse(self, text):
        props = realm_properties()
        lines = text.split("\n")
        lineno = 0
        priority = 1

        def next_line():
            nonlocal lineno
            while lines:
                line = lines.pop(0)
                lineno += 1
                if not re.match(r"^\s*#", line):
                    return line
            return None

        while lines:
            line = next_line()
            if not line:
                continue
            errprefix = "file %s line %d" % (self.FILE, lineno)
            header = re.match(r"^(\S+):\s*(\S+)\s*$", line)
            if not header:
                warn("%s - ignore config line: %s" % (errprefix, line))
                continue
            realm_type, realm = header.group(1).lower(), header.group(2)
            skip = False
            if not re.fullmatch(REALM_RE, realm):
                skip = True
                warn("%s (skip section '%s'): value does not look like a valid realm" % (errprefix, realm))
            elif plugin_options(realm_type) is None:
                skip = True
                warn("%s (skip section '%s'): unsupported type '%s'" % (errprefix, realm, realm_type))
            config = {}
            while True:
                line = next_line()
                if not line:  # a blank line (or the end) closes the section
                    break
                if skip:
                    continue
                errprefix = "file %s line %d" % (self.FILE, lineno)
                prop = re.match(r"^\s+(\S+)(\s+(.*\S))?\s*$", line)
                if not prop:
                    warn("%s (section '%s') - ignore config line: %s" % (errprefix, realm, line))
                    continue
                key, value = prop.group(1), prop.group(3)
                try:
                    if key not in props:
                        raise ValueError("unknown property type\n")
                    if key in config:
                        raise ValueError("duplicate attribute\n")
                    if value is None and props[key]["type"] == "boolean":
                        value = "1"
                    if value is None:
                        raise ValueError("got undefined value\n")
                    config[key] = check_value(realm_type, key, value, props)
                except ValueError as error:
                    warn("%s (section '%s') - unable to parse value of '%s': %s"
                         % (errprefix, realm, key, error))
            if skip:
                continue
            config["type"] = realm_type
            try:
                check_config(realm_type, config, True)
                entry = config
            except PveError as error:
                # SectionConfig keeps the id with an undefined value (reference §10.5).
                warn("%s (skip section '%s'): %s" % (errprefix, realm, error.text))
                entry = None
            self.ids[realm] = entry
            self.order[realm] = priority
            priority += 1

        # PVE::Auth::Plugin::parse_config: one default realm, decoded comments, built-in realms.
        seen_default = False
        for data in self.ids.values():
            if not data:
                continue
            if data.get("default"):
                if seen_default:
                    del data["default"]
                seen_default = True
            if data.get("comment"):
                data["comment"] = decode_text(data["comment"])
        pve = self.ids.setdefault("pve", {}) or {}
        self.ids["pve"] = pve
        pve["type"] = "pve"
        pve.setdefault("comment", "Proxmox VE authentication server")
        pam = self.ids.setdefault("pam", {}) or {}
        self.ids["pam"] = pam
        pam["type"] = "pam"
        pam["plugin"] = "PVE::Auth::PAM"
        pam.setdefault("comment", "Linux PAM standard authentication")

    def write(self):
        props = realm_properties()
        maxpri = max(self.order.values(), default=0)
        for realm in self.ids:
            if realm not in self.order:
                maxpri += 1
                self.order[realm] = maxpri
        out = ""
        for realm in sorted(self.ids, key=lambda r: self.order[r]):
            scfg = self.ids[realm] or {}
            realm_type = scfg.get("type")
            opts = plugin_options(realm_type) if realm_type else None
            if opts is None:
                die("unknown section type '%s'\n" % (realm_type or ""))
            data = "%s: %s\n" % (realm_type, realm)
            done = {"comment", "disable"}
            if scfg.get("comment"):
                data += "\tcomment %s\n" % encode_text(scfg["comment"])
            keys = sorted(opts)
            for key in keys:
                if key in done or opts[key].get("optional"):
                    continue
                done.add(key)
                if scfg.get(key) is None:
                    die("section '%s' - missing value for required option '%s'\n" % (realm, key))
                data += format_config_line(props, key, scfg[key])
            for key in keys:
                if key in done or scfg.get(key) is None:
                    continue
                data += format_config_line(props, key, scfg[key])
            out += data + "\n"
        write_cfs(self.FILE, out.encode("utf-8"))


def format_config_line(props, key, value):
    if props.get(key, {}).get("type") == "boolean":
        return "\t%s %d\n" % (key, 1 if value else 0)
    if "%s" % value == "":
        return ""
    return "\t%s %s\n" % (key, value)


# --------------------------------------------------------------------------------------------
# user.cfg (PVE::AccessControl::parse_user_config / write_user_config)

SPECIAL_ROLES = [
    "Administrator", "NoAccess", "PVEAdmin", "PVEAuditor", "PVEDatastoreAdmin", "PVEDatastoreUser",
    "PVEMappingAdmin", "PVEMappingUser", "PVEPoolAdmin", "PVEPoolUser", "PVESDNAdmin", "PVESDNUser",
    "PVESysAdmin", "PVETemplateUser", "PVEUserAdmin", "PVEVMAdmin", "PVEVMUser",
]  # fmt: skip


def normalize_path(path):
    if not path:
        return None
    # grep { $_ } drops empty and "0" components alike
    path = "/" + "/".join(part for part in path.split("/") if part and part != "0")
    if not re.fullmatch(r"[A-Za-z0-9.\-_/]+", path):
        return None
    return path


ACL_PATHS = re.compile(
    r"""^(?:/
    |/access|/access/groups|/access/groups/[\w.\-]+|/access/realm|/access/realm/[\w.\-]+
    |/cluster|/cluster/ha|/cluster/ha/groups|/cluster/ha/groups/[\w.\-]+
    |/cluster/ha/rules|/cluster/ha/rules/[\w.\-]+
    |/mapping|/mapping/[\w.\-]+|/mapping/[\w.\-]+/[\w.\-]+
    |/nodes|/nodes/[\w.\-]+
    |/pool|/pool/[A-Za-z0-9.\-_]+(?:/[A-Za-z0-9.\-_]+){0,2}
    |/sdn|/sdn/controllers|/sdn/controllers/[\w\-]+|/sdn/dns|/sdn/dns/[A-Za-z0-9]+
    |/sdn/ipams|/sdn/ipams/[A-Za-z0-9]+|/sdn/zones|/sdn/zones/[A-Za-z0-9]+
    |/sdn/zones/[A-Za-z0-9]+/[A-Za-z0-9]+|/sdn/zones/[A-Za-z0-9]+/[A-Za-z0-9]+/[1-9][0-9]{0,3}
    |/storage|/storage/[\w.\-]+
    |/vms|/vms/[1-9][0-9]{2,}
    )$""",
    re.VERBOSE,
)


def split_fields(line):
    """Perl split(/:/, $line) drops trailing empty fields."""
    fields = line.split(":")
    while fields and fields[-1] == "":
        fields.pop()
    return fields


class UserCfg:
    FILE = "user.cfg"

    def __init__(self):
        raw = read_cfs(self.FILE)
        self.digest = hashlib.sha1(raw).hexdigest()
        self.users = {}
        self.groups = {}
        self.pools = {}
        self.roles = {}
        self.acl = {}
        self._parse(raw.decode("utf-8", "replace"))
        for role in SPECIAL_ROLES:
            self.roles[role] = None  # privileges are built in; never written
        self.users.setdefault("root@pam", {"enable": 1, "expire": 0})

    def _valid(self, verifier, value):
        try:
            verifier(value)
            return True
        except ValueError:
            return False

    def _parse(self, text):
        for raw_line in text.split("\n"):
            line = raw_line.strip()
            if not line or line.startswith("#"):
                continue
            fields = split_fields(line)
            kind, data = fields[0], fields[1:] + [""] * 8
            if kind == "user":
                user, enable, expire, first, last, email, comment, keys = data[:8]
                if not self._valid(verify_username, user):
                    warn("user config - ignore user '%s' - invalid user name" % user)
                    continue
                entry = {"enable": 1 if enable not in ("", "0") else 0, "expire": int(expire or 0)}
                if first:
                    entry["firstname"] = decode_text(first)
                if last:
                    entry["lastname"] = decode_text(last)
                entry["email"] = email
                if comment:
                    entry["comment"] = decode_text(comment)
                if keys:
                    entry["keys"] = keys
                self.users[user] = entry
            elif kind == "token":
                tokenid, expire, privsep, comment = data[:4]
                user, _, token = tokenid.partition("!")
                if user not in self.users:
                    warn("user config - ignore token '%s' - user does not exist" % tokenid)
                    continue
                token_cfg = {"expire": int(expire or 0), "privsep": 1 if privsep not in ("", "0") else 0}
                if comment:
                    token_cfg["comment"] = decode_text(comment)
                self.users[user].setdefault("tokens", {})[token] = token_cfg
            elif kind == "group":
                group, userlist, comment = data[:3]
                if not self._valid(verify_groupname, group):
                    warn("user config - ignore group '%s' - invalid characters in group name" % group)
                    continue
                entry = self.groups.setdefault(group, {"users": set()})
                if comment:
                    entry["comment"] = decode_text(comment)
                for user in split_list(userlist):
                    if not self._valid(verify_username, user) or user not in self.users:
                        warn("user config - ignore invalid group member '%s'" % user)
                    if self._valid(verify_username, user):
                        entry["users"].add(user)
            elif kind == "role":
                role, privs = data[:2]
                if not self._valid(verify_rolename, role):
                    warn("user config - ignore role '%s' - invalid characters in role name" % role)
                    continue
                self.roles[role] = split_list(privs)
            elif kind == "pool":
                self.pools[data[0]] = tuple(data[1:4])
            elif kind == "acl":
                self._parse_acl(line, data)
            else:
                warn("user config - ignore config line: %s" % line)

    def _parse_acl(self, line, data):
        propagate, pathtxt, uglist, rolelist = data[:4]
        propagate = 1 if propagate not in ("", "0") else 0
        path = normalize_path(pathtxt)
        if not path:
            warn("user config - ignore invalid path in acl '%s'" % pathtxt)
            return
        for role in split_list(rolelist):
            if role not in self.roles and role not in SPECIAL_ROLES:
                warn("user config - ignore invalid acl role '%s'" % role)
                continue
            for ug in split_list(uglist):
                node = self.acl.setdefault(path, {"users": {}, "groups": {}, "tokens": {}})
                if ug.startswith("@") and self._valid(verify_groupname, ug[1:]):
                    if ug[1:] not in self.groups:
                        warn("user config - ignore invalid acl group '%s'" % ug[1:])
                    node["groups"].setdefault(ug[1:], {})[role] = propagate
                elif self._valid(verify_username, ug):
                    if ug not in self.users:
                        warn("user config - ignore invalid acl member '%s'" % ug)
                    node["users"].setdefault(ug, {})[role] = propagate
                elif "!" in ug:
                    node["tokens"].setdefault(ug, {})[role] = propagate
                else:
                    warn("user config - invalid user/group '%s' in acl" % ug)

    def acl_node(self, path):
        return self.acl.setdefault(path, {"users": {}, "groups": {}, "tokens": {}})

    def write(self):
        out = ""
        for user in sorted(self.users):
            d = self.users[user]
            out += "user:%s:%d:%d:%s:%s:%s:%s:%s:\n" % (
                user,
                1 if d.get("enable") else 0,
                int(d.get("expire") or 0),
                encode_text(d["firstname"]) if d.get("firstname") else "",
                encode_text(d["lastname"]) if d.get("lastname") else "",
                d.get("email") or "",
                encode_text(d["comment"]) if d.get("comment") else "",
                d.get("keys") or "",
            )
            for token in sorted(d.get("tokens", {})):
                td = d["tokens"][token]
                out += "token:%s!%s:%d:%d:%s:\n" % (
                    user,
                    token,
                    int(td.get("expire") or 0),
                    1 if td.get("privsep") else 0,
                    encode_text(td["comment"]) if td.get("comment") else "",
                )
        out += "\n"
        for group in sorted(self.groups):
            d = self.groups[group]
            comment = encode_text(d["comment"]) if d.get("comment") else ""
            out += "group:%s:%s:%s:\n" % (group, ",".join(sorted(d["users"])), comment)
        out += "\n"
        for pool in sorted(self.pools):
            comment, vms, storage = (list(self.pools[pool]) + ["", "", ""])[:3]
            out += "pool:%s:%s:%s:%s:\n" % (pool, comment, vms, storage)
        out += "\n"
        for role in sorted(self.roles):
            if role in SPECIAL_ROLES:
                continue
            out += "role:%s:%s:\n" % (role, ",".join(sorted(self.roles[role] or [])))
        out += "\n"
        # ACL lines are sorted by path (since ac 8.1.4; older versions wrote hash order).
        for path in sorted(self.acl):
            node = self.acl[path]
            members = {0: {}, 1: {}}
            for kind, prefix, exclude in (("groups", "@", None), ("users", "", "root@pam"), ("tokens", "", None)):
                for member, roles in node[kind].items():
                    if member == exclude:
                        continue
                    lists = {0: [], 1: []}
                    for role in sorted(roles):
                        lists[1 if roles[role] else 0].append(role)
                    for propagate in (0, 1):
                        if lists[propagate]:
                            rolelist = ",".join(lists[propagate])
                            members[propagate].setdefault(rolelist, set()).add(prefix + member)
            for propagate in (0, 1):
                for rolelist in sorted(members[propagate]):
                    uglist = ",".join(sorted(members[propagate][rolelist]))
                    out += "acl:%d:%s:%s:%s:\n" % (propagate, path, uglist, rolelist)
        write_cfs(self.FILE, out.encode("utf-8"))


# --------------------------------------------------------------------------------------------
# API handlers (PVE::API2::Domains, Group, ACL, User; Cluster status; version)


def hash_order(items):
    """JSON arrays built from Perl hashes come out in random order (reference §10.11)."""
    items = list(items)
    random.shuffle(items)
    return items


def domains_index(params):
    cfg = Domains()
    result = []
    for realm, data in cfg.ids.items():
        data = data or {}
        entry = {"realm": realm, "type": data.get("type")}
        if data.get("comment"):
            entry["comment"] = data["comment"]
        if data.get("default"):
            entry["default"] = 1
        result.append(entry)
    return hash_order(result)


def domains_read(params):
    cfg = Domains()
    realm = params["realm"]
    data = cfg.ids.get(realm)
    if not data:
        die("domain '%s' does not exist\n" % realm)
    data = dict(data)
    data["digest"] = cfg.digest
    return data


def domains_create(params):
    params = dict(params)
    params.pop("password", None)
    with CfsLock(Domains.FILE, "add auth server failed"):
        cfg = Domains()
        realm = params.pop("realm")
        realm_type = params["type"]
        check_connection = params.pop("check-connection", None)
        if realm in cfg.ids:
            die("domain '%s' already exists\n" % realm)
        if realm in ("pam", "pve"):
            die("unable to use reserved name '%s'\n" % realm)
        if realm_type in ("pam", "pve"):
            die("unable to create builtin type '%s'\n" % realm_type)
        if check_connection is not None and realm_type not in ("ldap", "ad"):
            die("'check-connection' parameter can only be set for realms of type 'ldap' or 'ad'\n")
        config = check_config(realm_type, params, True)
        if config.get("default"):
            for other in cfg.ids.values():
                if other:
                    other.pop("default", None)
        cfg.ids[realm] = config
        cfg.write()
    return None


def domains_update(params):
    params = dict(params)
    params.pop("password", None)
    # The line numbers of the missing-realm warnings differ between 8.x and 9.x (reference §10.1).
    lines = (257, 261) if NODE.at_least("9.0.0") else (242, 246)
    with CfsLock(Domains.FILE, "update auth server failed"):
        cfg = Domains()
        digest = params.pop("digest", None)
        if digest is not None and digest != cfg.digest:
            die("detected modified configuration - file changed by other user? Try again.\n")
        realm = params.pop("realm")
        exists = bool(cfg.ids.get(realm))
        if not exists and not NODE.at_least("8.0.5"):
            die("domain '%s' does not exist\n" % realm)
        realm_type = cfg.ids.get(realm, {}).get("type") if exists else None
        check_connection = params.pop("check-connection", None)
        if exists and check_connection is not None and realm_type not in ("ldap", "ad"):
            die("'check-connection' parameter can only be set for realms of type 'ldap' or 'ad'\n")
        delete = params.pop("delete", None)
        if not delete and not params:
            die("no options specified\n")
        if not exists:
            # `my $type = $ids->{$realm}->{type}` autovivifies the realm, so the existence check
            # passes and Perl warns twice before lookup(undef) croaks.
            where = "/usr/share/perl5/PVE/API2/Domains.pm"
            for _ in range(2):
                warn("Use of uninitialized value $type in string eq at %s line %d." % (where, lines[0]))
            die("cannot lookup undefined type! at %s line %d.\n" % (where, lines[1]))
        entry = cfg.ids[realm]
        for key in split_list(delete):
            entry.pop(key, None)  # no check for fixed or required keys (a real quirk)
        config = check_config(realm_type, params, False)
        if config.get("default"):
            for other in cfg.ids.values():
                if other:
                    other.pop("default", None)
        for key, value in config.items():
            entry[key] = value
        cfg.write()
    return None


def domains_delete(params):
    with CfsLock(Domains.FILE, "delete auth server failed"):
        cfg = Domains()
        realm = params["realm"]
        if not cfg.ids.get(realm):
            die("authentication domain '%s' does not exist\n" % realm)
        del cfg.ids[realm]
        cfg.write()
    return None


def domains_sync(params):
    cfg = Domains()
    data = cfg.ids.get(params["realm"])
    if not data:
        raise ParamError("Parameter verification failed.\n", {"realm": "Realm does not exist."})
    if data["type"] not in ("ldap", "ad"):
        die("Cannot sync realm type '%s'! Only LDAP/AD realms can be synced.\n" % data["type"])
    die("realm sync is not faked\n")


def group_index(params):
    cfg = UserCfg()
    result = []
    for group, data in cfg.groups.items():
        entry = {"groupid": group, "users": ",".join(sorted(data["users"]))}
        if data.get("comment") is not None:
            entry["comment"] = data["comment"]
        result.append(entry)
    return hash_order(result)


def group_read(params):
    cfg = UserCfg()
    data = cfg.groups.get(params["groupid"])
    if not data:
        die("group '%s' does not exist\n" % params["groupid"])
    result = {"members": hash_order(data["users"])}
    if data.get("comment") is not None:
        result["comment"] = data["comment"]
    return result


def group_create(params):
    with CfsLock(UserCfg.FILE, "create group failed"):
        cfg = UserCfg()
        group = params["groupid"]
        if group in cfg.groups:
            die("group '%s' already exists\n" % group)
        cfg.groups[group] = {"users": set()}
        if params.get("comment"):
            cfg.groups[group]["comment"] = params["comment"]
        cfg.write()
    return None


def group_update(params):
    with CfsLock(UserCfg.FILE, "update group failed"):
        cfg = UserCfg()
        data = cfg.groups.get(params["groupid"])
        if not data:
            die("group '%s' does not exist\n" % params["groupid"])
        if params.get("comment") is not None:
            data["comment"] = params["comment"]
        cfg.write()
    return None


def group_delete(params):
    with CfsLock(UserCfg.FILE, "delete group failed"):
        cfg = UserCfg()
        group = params["groupid"]
        if group not in cfg.groups:
            die("group '%s' does not exist\n" % group)
        del cfg.groups[group]
        for user in cfg.users.values():
            user.get("groups", set()).discard(group)
        for node in cfg.acl.values():
            node["groups"].pop(group, None)
        cfg.write()
    return None


def acl_read(params):
    cfg = UserCfg()
    result = []
    for path, node in cfg.acl.items():
        for kind in ("user", "group", "token"):
            for ugid, roles in node[kind + "s"].items():
                for role, propagate in roles.items():
                    result.append(
                        {"path": path, "type": kind, "ugid": ugid, "roleid": role, "propagate": propagate}
                    )
    return hash_order(result)


def acl_update(params):
    if not (params.get("users") or params.get("groups") or params.get("tokens")):
        message = "either 'users', 'groups' or 'tokens' is required."
        raise ParamError("Parameter verification failed.\n", {k: message for k in ("users", "groups", "tokens")})
    path = normalize_path(params["path"])
    if not path or (not params.get("delete") and not ACL_PATHS.match(path)):
        raise ParamError("Parameter verification failed.\n", {"path": "invalid ACL path '%s'" % params["path"]})
    with CfsLock(UserCfg.FILE, "ACL update failed"):
        cfg = UserCfg()
        propagate = 1
        if params.get("propagate") is not None:
            propagate = 1 if params["propagate"] else 0
        node = cfg.acl_node(path)
        for role in split_list(params["roles"]):
            if role not in cfg.roles:
                die("role '%s' does not exist\n" % role)
            for group in split_list(params.get("groups")):
                if group not in cfg.groups:
                    die("group '%s' does not exist\n" % group)
                if params.get("delete"):
                    node["groups"].get(group, {}).pop(role, None)
                else:
                    node["groups"].setdefault(group, {})[role] = propagate
            for user in split_list(params.get("users")):
                if user not in cfg.users:
                    die("user '%s' does not exist\n" % user)
                if params.get("delete"):
                    node["users"].get(user, {}).pop(role, None)
                else:
                    node["users"].setdefault(user, {})[role] = propagate
            for token in split_list(params.get("tokens")):
                user, _, name = token.partition("!")
                if name not in cfg.users.get(user, {}).get("tokens", {}):
                    die("no such token '%s' for user '%s'\n" % (name, user))
                if params.get("delete"):
                    node["tokens"].get(token, {}).pop(role, None)
                else:
                    node["tokens"].setdefault(token, {})[role] = propagate
        for kind in ("users", "groups", "tokens"):
            node[kind] = {ugid: roles for ugid, roles in node[kind].items() if roles}
        cfg.write()
    return None


def user_index(params):
    cfg = UserCfg()
    realms = Domains().ids
    full = params.get("full")
    result = []
    for userid in sorted(cfg.users):
        d = cfg.users[userid]
        if params.get("enabled") is not None and int(bool(d.get("enable"))) != params["enabled"]:
            continue
        entry = {"userid": userid, "enable": 1 if d.get("enable") else 0, "expire": d.get("expire", 0)}
        for key in ("firstname", "lastname", "email", "comment", "keys"):
            if d.get(key):
                entry[key] = d[key]
        realm = userid.rpartition("@")[2]
        if realms.get(realm):
            entry["realm-type"] = realms[realm]["type"]
        if full:
            entry["groups"] = ",".join(sorted(g for g, gd in cfg.groups.items() if userid in gd["users"]))
            tokens = d.get("tokens")
            entry["tokens"] = (
                [dict({"tokenid": name}, **tokens[name]) for name in sorted(tokens)] if tokens else None
            )
        result.append(entry)
    return result


def user_create(params):
    with CfsLock(UserCfg.FILE, "create user failed"):
        cfg = UserCfg()
        userid = params["userid"]
        realm = userid.rpartition("@")[2]
        if userid in cfg.users:
            die("user '%s' already exists\n" % userid)
        if not Domains().ids.get(realm):
            die("auth domain '%s' does not exist\n" % realm)
        entry = {"enable": params.get("enable", 1), "expire": int(params.get("expire") or 0)}
        for key in ("firstname", "lastname", "email", "comment", "keys"):
            if params.get(key):
                entry[key] = params[key]
        cfg.users[userid] = entry
        for group in split_list(params.get("groups")):
            if group not in cfg.groups:
                die("group '%s' does not exist\n" % group)
            cfg.groups[group]["users"].add(userid)
        cfg.write()
    return None


def user_delete(params):
    with CfsLock(UserCfg.FILE, "delete user failed"):
        cfg = UserCfg()
        userid = params["userid"]
        if userid not in cfg.users:
            die("user '%s' does not exist\n" % userid)
        del cfg.users[userid]
        for group in cfg.groups.values():
            group["users"].discard(userid)
        for node in cfg.acl.values():
            node["users"].pop(userid, None)
        cfg.write()
    return None


def cluster_status(params):
    members = NODE.members()
    nodename = members.get("nodename") or NODE.nodename()
    cluster = members.get("cluster")
    result = []
    if cluster:
        result.append(
            {
                "id": "cluster",
                "name": cluster["name"],
                "nodes": cluster["nodes"],
                "quorate": cluster["quorate"],
                "type": "cluster",
                "version": cluster["version"],
            }
        )
        for name, info in members.get("nodelist", {}).items():
            result.append(
                {
                    "id": "node/" + name,
                    "ip": info.get("ip", ""),
                    "level": "",
                    "local": 1 if name == nodename else 0,
                    "name": name,
                    "nodeid": info["id"],
                    "online": info["online"],
                    "type": "node",
                }
            )
    else:
        result.append(
            {
                "id": "node/" + nodename,
                "ip": NODE.config.get("ip", ""),
                "level": "",
                "local": 1,
                "name": nodename,
                "nodeid": 0,
                "online": 1,
                "type": "node",
            }
        )
    return result


def version_info(params):
    manager = NODE.config.get("manager", "8.4.1")
    return {
        "release": ".".join(manager.split(".")[:2]),
        "repoid": NODE.config.get("manager_hash", "0000000000000000")[:8],
        "version": manager,
    }


# --------------------------------------------------------------------------------------------
# method schemas


def realm_std():
    return {"type": "string", "format": "pve-realm", "maxLength": 32}


def create_realm_schema():
    schema = dict(realm_properties())
    schema["realm"] = realm_std()
    schema["check-connection"] = BOOL
    schema["password"] = STR
    return schema


def update_realm_schema():
    schema = {k: v for k, v in realm_properties().items() if k not in ("type", "username-claim")}
    schema["realm"] = realm_std()
    schema["check-connection"] = BOOL
    schema["password"] = STR
    schema["delete"] = {"type": "string", "format": "pve-configid-list", "maxLength": 4096, "optional": 1}
    schema["digest"] = {"type": "string", "maxLength": 64, "optional": 1}
    return schema


GROUPID = {"type": "string", "format": "pve-groupid"}
USERID = {"type": "string", "format": "pve-userid", "maxLength": 64}
ACL_SCHEMA = {
    "propagate": BOOL,
    "path": {"type": "string"},
    "users": {"type": "string", "format": "pve-userid-list", "optional": 1},
    "groups": {"type": "string", "format": "pve-groupid-list", "optional": 1},
    "tokens": {"type": "string", "format": "pve-tokenid-list", "optional": 1},
    "roles": {"type": "string", "format": "pve-roleid-list"},
    "delete": BOOL,
}
USER_CREATE = {
    "userid": USERID,
    "comment": STR,
    "email": STR,
    "enable": BOOL,
    "expire": {"type": "integer", "optional": 1},
    "firstname": STR,
    "lastname": STR,
    "groups": {"type": "string", "format": "pve-groupid-list", "optional": 1},
    "keys": STR,
}


class Method:
    def __init__(self, handler, schema, returns):
        self.handler = handler
        self.schema = schema  # a dict, or a function building it for the node's version
        self.returns = returns  # "null", "array" or "object"

    def parameters(self):
        return self.schema() if callable(self.schema) else dict(self.schema)


METHODS = {
    "domains.index": Method(domains_index, {}, "array"),
    "domains.read": Method(domains_read, {"realm": realm_std()}, "object"),
    "domains.create": Method(domains_create, create_realm_schema, "null"),
    "domains.update": Method(domains_update, update_realm_schema, "null"),
    "domains.delete": Method(domains_delete, {"realm": realm_std()}, "null"),
    "domains.sync": Method(domains_sync, {"realm": realm_std(), "dry-run": BOOL, "scope": STR}, "null"),
    "group.index": Method(group_index, {}, "array"),
    "group.read": Method(group_read, {"groupid": GROUPID}, "object"),
    "group.create": Method(group_create, {"groupid": GROUPID, "comment": STR}, "null"),
    "group.update": Method(group_update, {"groupid": GROUPID, "comment": STR}, "null"),
    "group.delete": Method(group_delete, {"groupid": GROUPID}, "null"),
    "acl.read": Method(acl_read, {}, "array"),
    "acl.update": Method(acl_update, ACL_SCHEMA, "null"),
    "user.index": Method(user_index, {"enabled": BOOL, "full": BOOL}, "array"),
    "user.create": Method(user_create, USER_CREATE, "null"),
    "user.delete": Method(user_delete, {"userid": USERID}, "null"),
    "cluster.status": Method(cluster_status, {}, "array"),
    "version": Method(version_info, {}, "object"),
}

OUTPUT_OPTIONS = {
    "output-format": {"type": "string", "enum": ["text", "json", "json-pretty", "yaml"], "optional": 1},
    "noheader": BOOL,
    "noborder": BOOL,
    "quiet": BOOL,
    "human-readable": BOOL,
}


# --------------------------------------------------------------------------------------------
# command line: Getopt::Long as PVE::JSONSchema::get_options configures it


def getopt(args, schema):
    """Getopt::Long with prefix (--|-), permute, auto_abbrev and ignore_case.

    Returns (options, positional, ok). Problems are warned like Getopt::Long does, one line each.
    """
    kinds = {}
    for name, prop in schema.items():
        if prop.get("type") == "boolean":
            kinds[name] = "optional"
        elif prop.get("format", "").endswith("-list"):
            kinds[name] = "list"
        else:
            kinds[name] = "mandatory"
    names = sorted(kinds)
    opts, positional, ok = {}, [], True
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            positional.extend(args[index:])
            break
        match = re.match(r"^(--|-)(.+)$", arg, re.S)
        if not match:
            positional.append(arg)
            continue
        typed, has_value, value = match.group(2).partition("=")
        wanted = typed.lower()
        exact = [name for name in names if name.lower() == wanted]
        hits = exact or [name for name in names if name.lower().startswith(wanted)]
        if len(hits) > 1:
            warn("Option %s is ambiguous (%s)" % (typed, ", ".join(hits)))
            ok = False
            continue
        if not hits:
            warn("Unknown option: %s" % typed)
            ok = False
            continue
        name = hits[0]
        kind = kinds[name]
        if has_value:
            if value == "" and kind != "optional":
                warn("Option %s requires an argument" % name)
                ok = False
                continue
        elif kind == "optional":
            if index < len(args) and not (args[index] == "--" or re.match(r"^(--|-).+", args[index], re.S)):
                value = args[index]
                index += 1
            else:
                value = ""
        elif index < len(args):
            value = args[index]
            index += 1
        else:
            warn("Option %s requires an argument" % name)
            ok = False
            continue
        if kind == "list":
            opts.setdefault(name, []).append(value)
        else:
            opts[name] = value
    return opts, positional, ok


def get_options(schema, args, arg_param, fixed):
    """PVE::JSONSchema::get_options: Getopt, positional args, locale decoding, booleans."""
    getopt_schema = {k: v for k, v in schema.items() if k not in fixed}
    opts, positional, ok = getopt(args, getopt_schema)
    if not ok:
        raise ParamError("unable to parse option\n")
    if positional:
        for name in arg_param:
            if not positional:
                raise ParamError("not enough arguments\n")
            opts[name] = positional.pop(0)
        if positional:
            raise ParamError("too many arguments\n")
    elif arg_param:
        raise ParamError("not enough arguments\n")
    for name, value in list(opts.items()):
        if isinstance(value, list):
            opts[name] = [decode_arg(item) for item in value]
        else:
            opts[name] = decode_arg(value)
    for name, value in list(opts.items()):
        prop = schema.get(name, {})
        if prop.get("type") == "boolean":
            if value == "":
                opts[name] = 1
            else:
                parsed = parse_boolean(value)
                if parsed is None:
                    raise ParamError("unable to parse boolean option\n")
                opts[name] = parsed
        elif isinstance(value, list):
            opts[name] = ",".join(value)
    opts.update(fixed)
    return opts


def usage_line(prefix, schema, arg_param, fixed, with_format):
    """RESTHandler::usage_str in 'short' style."""
    args = ["<%s>" % name for name in arg_param]
    for name in sorted(schema):
        if name in arg_param or name in fixed or schema[name].get("optional"):
            continue
        args.append("--%s <%s>" % (name, schema[name].get("type", "string")))
    has_options = any(
        schema[name].get("optional") for name in schema if name not in arg_param and name not in fixed
    )
    line = " ".join([prefix] + args)
    if has_options:
        line += " [OPTIONS]"
    if with_format:
        line += " [FORMAT_OPTIONS]"
    return line + "\n"


def run_method(method, prefix, args, arg_param, fixed, with_format):
    schema = method.parameters()
    full_schema = dict(schema)
    if with_format:
        full_schema.update(OUTPUT_OPTIONS)
    usage = usage_line(prefix, schema, arg_param, fixed, with_format)
    try:
        params = get_options(full_schema, args, arg_param, fixed)
        output = {k: params.pop(k) for k in list(params) if k in OUTPUT_OPTIONS and k not in schema}
        validate(params, schema)
        result = method.handler(params)
    except ParamError as error:
        # RESTHandler::cli_handler appends the usage to every parameter exception.
        sys.stderr.write(error.render(usage))
        return 255
    except PveError as error:
        sys.stderr.write(error.text)
        return 255
    if prefix.startswith("pveum") and method.returns == "array":
        if any(isinstance(item, dict) and item.get("type", "") is None for item in result):
            # An undefined domains.cfg entry fails the index's return schema (reference §10.5).
            sys.stderr.write("400 Result verification failed\n")
            return 255
    print_result(result, method.returns, output)
    return 0


# --------------------------------------------------------------------------------------------
# output (PVE::CLIFormatter::print_api_result)


def emit(text):
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


def print_result(result, returns, options):
    if returns == "null":
        return
    fmt = options.get("output-format", "text")
    if fmt == "json":
        emit(json.dumps(result, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
    elif fmt == "json-pretty":
        emit(json.dumps(result, sort_keys=True, indent=3, separators=(",", " : "), ensure_ascii=False) + "\n")
    elif fmt == "yaml":
        emit(to_yaml(result))
    else:
        emit(to_table(result, options))


def to_yaml(data):
    def scalar(value):
        if value is None:
            return "~"
        text = "%s" % value
        if text == "" or re.search(r"[:#\[\]{},&*!|>'\"%@`]|^\s|\s$", text):
            return "'" + text.replace("'", "''") + "'"
        return text

    lines = ["---"]
    if isinstance(data, list):
        for item in data:
            prefix = "- "
            if isinstance(item, dict):
                for key in sorted(item):
                    lines.append("%s%s: %s" % (prefix, key, scalar(item[key])))
                    prefix = "  "
            else:
                lines.append("- " + scalar(item))
    elif isinstance(data, dict):
        for key in sorted(data):
            value = data[key]
            if isinstance(value, list):
                lines.append("%s:" % key)
                lines.extend("  - " + scalar(item) for item in value)
            else:
                lines.append("%s: %s" % (key, scalar(value)))
    return "\n".join(lines) + "\n"


def to_table(data, options):
    if isinstance(data, dict):
        rows = [{"key": key, "value": json.dumps(data[key]) if isinstance(data[key], (list, dict)) else data[key]}
                for key in sorted(data)]
        columns = ["key", "value"]
    else:
        rows = sorted(data, key=lambda row: json.dumps(row, sort_keys=True))
        columns = sorted({key for row in rows for key in row})
    cells = [["" if row.get(c) is None else "%s" % row.get(c) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    if options.get("noborder"):
        lines = [] if options.get("noheader") else [" ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
        lines += [" ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
        return "\n".join(lines) + ("\n" if lines else "")
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [rule]
    if not options.get("noheader"):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |")
        lines.append(rule.replace("-", "="))
    for r in cells:
        lines.append("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |")
    lines.append(rule)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# pveum


# (words) -> (method, arg_param, fixed, print result?)
PVEUM = {
    ("realm", "add"): ("domains.create", ["realm"], {}, False),
    ("realm", "modify"): ("domains.update", ["realm"], {}, False),
    ("realm", "delete"): ("domains.delete", ["realm"], {}, False),
    ("realm", "list"): ("domains.index", [], {}, True),
    ("realm", "sync"): ("domains.sync", ["realm"], {}, False),
    ("group", "add"): ("group.create", ["groupid"], {}, False),
    ("group", "modify"): ("group.update", ["groupid"], {}, False),
    ("group", "delete"): ("group.delete", ["groupid"], {}, False),
    ("group", "list"): ("group.index", [], {}, True),
    ("acl", "modify"): ("acl.update", ["path"], {"delete": 0}, False),
    ("acl", "delete"): ("acl.update", ["path"], {"delete": 1}, False),
    ("acl", "list"): ("acl.read", [], {}, True),
    ("user", "add"): ("user.create", ["userid"], {}, False),
    ("user", "delete"): ("user.delete", ["userid"], {}, False),
    ("user", "list"): ("user.index", [], {}, True),
}
PVEUM_ALIASES = {
    "aclmod": ("acl", "modify"), "acldel": ("acl", "delete"), "groupadd": ("group", "add"),
    "groupmod": ("group", "modify"), "groupdel": ("group", "delete"), "useradd": ("user", "add"),
    "userdel": ("user", "delete"),
}  # fmt: skip


def pveum_main(args):
    if not args:
        sys.stderr.write("ERROR: no command specified\n")
        return 255
    words = PVEUM_ALIASES.get(args[0])
    rest = args[1:]
    if words is None:
        if len(args) < 2 or (args[0], args[1]) not in PVEUM:
            sys.stderr.write("ERROR: unknown command 'pveum %s'\n" % " ".join(args[:2]))
            return 255
        words, rest = (args[0], args[1]), args[2:]
    method, arg_param, fixed, with_format = PVEUM[words]
    prefix = "pveum " + " ".join(words)
    return run_method(METHODS[method], prefix, rest, arg_param, fixed, with_format)


# --------------------------------------------------------------------------------------------
# pvesh


PVESH_ROUTES = [
    (r"/access/domains", {"get": "domains.index", "create": "domains.create"}),
    (r"/access/domains/(?P<realm>[^/]+)", {"get": "domains.read", "set": "domains.update", "delete": "domains.delete"}),
    (r"/access/groups", {"get": "group.index", "create": "group.create"}),
    (r"/access/groups/(?P<groupid>[^/]+)", {"get": "group.read", "set": "group.update", "delete": "group.delete"}),
    (r"/access/acl", {"get": "acl.read", "set": "acl.update"}),
    (r"/access/users", {"get": "user.index", "create": "user.create"}),
    (r"/access/users/(?P<userid>[^/]+)", {"delete": "user.delete"}),
    (r"/cluster/status", {"get": "cluster.status"}),
    (r"/version", {"get": "version"}),
]


def pvesh_main(args):
    if not args:
        sys.stderr.write("ERROR: no command specified\n")
        return 255
    verb = args[0]
    if verb not in ("get", "create", "set", "delete"):
        sys.stderr.write("ERROR: unknown command 'pvesh %s'\n" % verb)
        return 255
    if len(args) < 2:
        sys.stderr.write("400 not enough arguments\npvesh %s <api_path> [OPTIONS] [FORMAT_OPTIONS]\n" % verb)
        return 255
    api_path = "/" + "/".join(part for part in args[1].split("/") if part)
    for pattern, verbs in PVESH_ROUTES:
        match = re.fullmatch(pattern, api_path)
        if match:
            if verb not in verbs:
                break
            fixed = {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()}
            prefix = "pvesh %s %s" % (verb, args[1])
            return run_method(METHODS[verbs[verb]], prefix, args[2:], [], fixed, True)
    sys.stderr.write("No '%s' handler defined for '%s'\n" % (verb, api_path))
    return 255


# --------------------------------------------------------------------------------------------
# pveversion


def pveversion_main(args):
    config = NODE.config
    manager = config.get("manager", "8.4.1")
    manager_hash = config.get("manager_hash", "0000000000000000")
    kernel = config.get("kernel", "6.8.12-9-pve")
    if not args:
        emit("pve-manager/%s/%s (running kernel: %s)\n" % (manager, manager_hash, kernel))
        return 0
    if args[0] in ("-v", "--verbose"):
        emit(
            "proxmox-ve: %s (running kernel: %s)\n" % (config.get("proxmox_ve", manager), kernel)
            + "pve-manager: %s (running version: %s/%s)\n" % (manager, manager, manager_hash)
            + "libpve-access-control: %s\n" % NODE.access_control
        )
        return 0
    sys.stderr.write("Unknown option: %s\n400 unable to parse option\npveversion  [OPTIONS]\n" % args[0].lstrip("-"))
    return 255


def main(argv):
    global NODE
    NODE = Node()
    tool, args = argv[1], argv[2:]
    handlers = {"pveum": pveum_main, "pvesh": pvesh_main, "pveversion": pveversion_main}
    try:
        return handlers[tool](args)
    except PveError as error:
        sys.stderr.write(error.text)
        return 255


if __name__ == "__main__":
    sys.exit(main(sys.argv))
